#include "app/cli_errors.h"

#include <iostream>

#include <cstring>
#include <ostream>
#include <string_view>

#include <nlohmann/json.hpp>

#include "app/exit_codes.h"

namespace modelreg::app {

bool WantsJson(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) return false;
    if (std::strcmp(argv[i], "--json") == 0) return true;
  }
  return false;
}

int ReportError(const std::string& prog, bool json, const Status& status, const std::string& hint,
                std::ostream& err) {
  const int exit_code = ExitCode(status);
  if (json) {
    nlohmann::ordered_json e = {{"code", std::string(CodeName(status.code()))},
                        {"message", status.message()},
                        {"exit_code", exit_code}};
    if (!hint.empty()) e["hint"] = hint;
    // Invalid UTF-8 in a message (it may quote input) is replaced, not thrown.
    err << nlohmann::ordered_json{{"error", e}}.dump(
               -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
        << '\n';
  } else {
    err << prog << ": " << status.ToString() << '\n';
    if (!hint.empty()) err << hint << '\n';
  }
  return exit_code;
}

void ReportNotice(const std::string& prog, bool json, const std::string& kind,
                  const std::string& message, std::ostream& err) {
  if (json) {
    err << nlohmann::ordered_json{{kind, {{"message", message}}}}.dump(
               -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
        << '\n';
  } else {
    err << prog << ": " << kind << ": " << message << '\n';
  }
}

std::function<void(const std::string&)> WarningSink(bool json) {
  return [json](const std::string& message) {
    ReportNotice("modelreg", json, "warning", message, std::cerr);
  };
}

Status ParseErrorStatus(const CLI::App& root, const CLI::ParseError& e) {
  // The deepest subcommand that was parsed is the one whose help helps.
  std::string path = root.get_name();
  const CLI::App* app = &root;
  for (bool deeper = true; deeper;) {
    deeper = false;
    for (const CLI::App* sub : app->get_subcommands()) {
      app = sub;
      path += " " + sub->get_name();
      deeper = true;
      break;
    }
  }
  std::string what = e.what();
  // CLI11 puts line breaks in a few messages; an error stays one line.
  for (char& c : what) {
    if (c == '\n') c = ' ';
  }
  while (!what.empty() && what.back() == ' ') what.pop_back();
  return Status::InvalidArgument(what + "; run `" + path + " --help`");
}

std::string ErrorHint(const std::string& command, const Status& status) {
  if (command != "promote" || status.code() != Code::kRejected ||
      status.message().find(" refused by the gates: ") == std::string::npos) {
    return "";
  }
  return "  see the gate policy:   modelreg policy show\n"
         "  change it (admin):     modelreg policy set FILE --reason '...'\n"
         "  promote anyway:        modelreg promote TYPE VERSION --override-gates --reason '...'\n"
         "                         (recorded; through the server it needs a model:admin token)";
}

}  // namespace modelreg::app
