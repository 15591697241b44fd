// The OpenAPI 3.0 description of the HTTP API: docs/openapi.json, embedded
// at build time (tools/embed_file.py makes openapi_document.cc from it), so
// the server answers GET /api/v1/openapi.json with the repository file's
// exact bytes.
#pragma once

#include <string_view>

namespace modelreg::server {

std::string_view OpenApiDocument();

}  // namespace modelreg::server
