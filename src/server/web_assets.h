// The web page's files (src/web/, docs/web.md), embedded in the server at
// build time by tools/embed_file.py: `modelreg serve` needs nothing beside
// its binary and loads nothing from the network.
#pragma once

#include <string_view>

namespace modelreg::server::web {

std::string_view IndexHtml();
std::string_view AppJs();
std::string_view StyleCss();

}  // namespace modelreg::server::web
