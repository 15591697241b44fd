// Where the HTTP layer (cpp-httplib, libjwt, OpenSSL's TLS) is. Two
// executables are built from tools/modelreg/main.cc: `modelreg-net`, with
// everything, and `modelreg`, the one a shell runs most, without the HTTP
// layer and its shared libraries (linking them costs more CPU than a read
// itself: cpp-httplib's static OpenSSL initialiser runs in every process
// that loads it; docs/performance.md, "Cold process"). A command that needs
// the HTTP layer in `modelreg` replaces the process with `modelreg-net`,
// same arguments, same environment, same pid, before it has read or
// written anything.
#pragma once

#include "app/registry_commands.h"
#include "common/status.h"

namespace modelreg::app {

// main() keeps its arguments for EnsureNetLayer.
void RememberArguments(char** argv);
// What RememberArguments kept (argv ends with a null pointer, as main's).
char** RememberedArguments();

// Whether a command may talk HTTP: --url / MODELREG_URL is set, or
// <root>/server.json announces a server whose pid is alive (writes then go
// to it; client/server_file.h), or the registry is replicated
// (replication.json: its writes ship through NATS; docs/replication.md).
bool MayNeedNetLayer(const Globals& g);

// In `modelreg-net` (and every other program that links the HTTP layer):
// OK, nothing to do. In `modelreg`: runs `modelreg-net` from the directory
// of this executable in place of this process; returns only when that
// fails, with the reason.
Status EnsureNetLayer();

}  // namespace modelreg::app
