// Random identifiers: event ids (log/envelope.h) and the unique parts of
// temporary file and directory names. Thread-safety: free function.
#pragma once

#include <cstddef>
#include <string>

namespace modelreg {

// `bytes` bytes from the OpenSSL CSPRNG as 2 * `bytes` lowercase hex
// characters. Aborts if the generator fails.
std::string RandomHex(std::size_t bytes);

}  // namespace modelreg
