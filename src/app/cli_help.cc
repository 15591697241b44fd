#include "app/cli_help.h"

#include <cctype>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "model/naming.h"

namespace modelreg::app {
namespace {

// The options a parent's --help shows, minus --help/--version and hidden ones.
std::vector<const CLI::Option*> VisibleOptions(const CLI::App& app) {
  return app.get_options([&app](const CLI::Option* o) {
    return o != app.get_help_ptr() && o != app.get_help_all_ptr() &&
           o != app.get_version_ptr() && !o->get_group().empty();
  });
}

// Options given to the ancestors of `app` that also apply to it (CLI11
// fallthrough), nearest parent first.
std::vector<const CLI::Option*> InheritedOptions(const CLI::App& app) {
  std::vector<const CLI::Option*> out;
  for (const CLI::App* p = app.get_parent(); p != nullptr; p = p->get_parent()) {
    for (const CLI::Option* o : VisibleOptions(*p)) {
      if (o->nonpositional()) out.push_back(o);
    }
  }
  return out;
}

class HelpFormatter : public CLI::Formatter {
 public:
  std::string make_footer(const CLI::App* app) const override {
    std::string out;
    const std::vector<const CLI::Option*> inherited = InheritedOptions(*app);
    if (!inherited.empty()) {
      // make_group starts with a line break; make_help already put one here.
      out += make_group("Global options (before or after the command)", false, inherited).substr(1);
      out += "\n";
    }
    const std::string footer = app->get_footer();
    if (!footer.empty()) out += footer + "\n";
    return out;
  }
};

std::string FullPath(const CLI::App& app) {
  std::string path;
  for (const CLI::App* p = &app; p != nullptr && p->get_parent() != nullptr; p = p->get_parent()) {
    path = p->get_name() + (path.empty() ? "" : " " + path);
  }
  return path;
}

void ForEachCommand(const CLI::App& app, const std::function<void(const CLI::App&)>& f) {
  for (const CLI::App* sub : app.get_subcommands({})) {
    f(*sub);
    ForEachCommand(*sub, f);
  }
}

// One or two examples per command, as a user would type them (they run
// as written against a registry holding risk_model v1.0.0 and v1.1.0).
const std::map<std::string, std::string>& Examples(const std::string& program) {
  static const std::map<std::string, std::string> kReplay = {
      {"verify", "  modelreg-replay --root /srv/models verify"},
      {"rebuild", "  modelreg-replay --root /srv/models rebuild"},
      {"export", "  modelreg-replay --root /srv/models export --to models.export"},
      {"import", "  modelreg-replay import models.export --to /srv/models-copy"},
      {"materialize",
       "  modelreg-replay --root /srv/models materialize --at 2025-01-15T09:30:00Z --to /tmp/asof"},
  };
  if (program == "modelreg-replay") return kReplay;
  static const std::map<std::string, std::string> kExamples = {
      {"register",
       "  modelreg register risk_model ./risk.pkl --version v1.1.0 --metric sharpe=1.4 \\\n"
       "      --metric ic=0.05 --dataset crsp=v1.2.3\n"
       "  modelreg register alpha_weights ./weights/ --version v2.0.0 --metadata meta.json"},
      {"list", "  modelreg list\n  modelreg list risk_model --status staged --sort sharpe --limit 10\n"
               "  modelreg list --since -7d --limit 0"},
      {"show", "  modelreg show risk_model v1.1.0\n  modelreg --json show risk_model v1.1.0 --at -2h"},
      {"current", "  modelreg current risk_model\n  modelreg current risk_model --at 2025-01-15"},
      {"history", "  modelreg history risk_model\n"
                  "  modelreg history risk_model --since -30d --until -7d --limit 5"},
      {"audit", "  modelreg audit --at 2025-01-15T09:30:00Z\n"
                "  modelreg audit --at -1d risk_model --policy-text"},
      {"policy", "  modelreg policy show\n  modelreg policy set policy.toml --reason 'raise IC floor'"},
      {"policy set", "  modelreg policy set policy.toml --reason 'raise IC floor' --actor admin"},
      {"policy show", "  modelreg policy show\n  modelreg policy show --at 2025-01-15"},
      {"promote", "  modelreg promote risk_model v1.1.0 --reason 'weekly update'\n"
                  "  modelreg promote risk_model v1.1.0 --override-gates --reason 'desk head ok'"},
      {"compat", "  modelreg compat risk_model v1.1.0 --current crsp=v1.2.3\n"
                 "  modelreg compat risk_model v1.1.0 --current-file datasets.json --no-strict"},
      {"archive", "  modelreg archive risk_model v1.0.0 --reason 'superseded'"},
      {"fail", "  modelreg fail risk_model v1.0.0 --reason 'bad fills in backtest'"},
      {"rollback", "  modelreg rollback risk_model --dry-run\n"
                   "  modelreg rollback risk_model --fail --reason 'drawdown alarm'"},
      {"validate", "  modelreg validate risk_model v1.1.0"},
      {"annotate", "  modelreg annotate risk_model v1.1.0 --tag desk=eq --reason 'ownership'\n"
                   "  modelreg annotate risk_model v1.1.0 --metric sharpe=1.2 --source paper-trading "
                   "--reason 'two weeks live'"},
      {"events", "  modelreg events --since -1h --limit 0\n"
                 "  modelreg --json events --type risk_model --limit 20 --follow"},
      {"verify", "  modelreg verify"},
      {"backup", "  modelreg backup create\n  modelreg backup restore 1 --to /srv/models-restored"},
      {"backup create", "  modelreg backup create"},
      {"backup list", "  modelreg backup list\n  modelreg --json backup list"},
      {"backup verify", "  modelreg backup verify latest"},
      {"backup restore", "  modelreg backup restore 1 --to /srv/models-restored"},
      {"gc", "  modelreg gc --dry-run\n  modelreg gc --keep 5 --retention-days 90"},
      {"serve", "  MODELREG_JWT_SECRET=... modelreg serve --listen 127.0.0.1:8080"},
      {"token", "  modelreg token issue --sub alice --scope model:write --ttl 1h"},
      {"token issue", "  modelreg token issue --sub alice --scope model:write --ttl 1h"},
      {"consumers", "  modelreg consumers risk_model"},
      {"watch", "  modelreg watch risk_model --consumer pricing-1 --dataset crsp=v1.2.3"},
      {"cache", "  modelreg cache stats --cache-dir ./data/cache"},
      {"cache stats", "  modelreg cache stats --cache-dir ./data/cache"},
      {"cache gc", "  modelreg cache gc --cache-dir ./data/cache --verify"},
      {"cache purge", "  modelreg cache purge --cache-dir ./data/cache --factor momentum"},
      {"diff", "  modelreg diff --from 2025-01-01 --to now"},
      {"completion", "  source <(modelreg completion bash)\n"
                     "  modelreg completion bash > ~/.local/share/bash-completion/completions/modelreg"},
      {"man", "  modelreg man | man -l -"},
  };
  return kExamples;
}

std::string ShellWords(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

// Long names of an option (CLI11 stores them without dashes).
std::vector<std::string> Flags(const CLI::Option& o) {
  std::vector<std::string> out;
  for (const std::string& n : o.get_lnames()) out.push_back("--" + n);
  for (const std::string& n : o.get_snames()) out.push_back("-" + n);
  return out;
}

bool TakesValue(const CLI::Option& o) { return o.get_type_size_max() > 0; }

// Roff-escapes text for a man page line.
std::string Roff(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else {
      out += c;
    }
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out.insert(0, "\\&");
  return out;
}

void RoffOptions(const std::vector<const CLI::Option*>& opts, std::ostringstream& out) {
  for (const CLI::Option* o : opts) {
    std::string name = o->get_positional() ? o->get_name() : ShellWords(Flags(*o));
    if (!o->get_positional() && TakesValue(*o)) name += " " + o->get_type_name();
    out << ".TP\n.B " << Roff(name) << '\n' << Roff(o->get_description()) << '\n';
  }
}

}  // namespace

std::shared_ptr<CLI::Formatter> MakeHelpFormatter() { return std::make_shared<HelpFormatter>(); }

void AddExamples(CLI::App& root) {
  const auto& examples = Examples(root.get_name());
  ForEachCommand(root, [&](const CLI::App& app) {
    CLI::App* sub = const_cast<CLI::App*>(&app);  // CLI11 lists subcommands as const here
    std::string footer;
    if (root.get_name() == "modelreg" && FullPath(app) == "register") {
      footer = "Model names (TYPE): " + std::string(model::kModelTypeGrammar) +
               ".\nVersions: v followed by a semantic version (v1.2.0, v2.0.0-rc.1).\n\n";
    }
    if (!app.get_footer().empty()) footer += app.get_footer() + "\n\n";
    if (auto it = examples.find(FullPath(app)); it != examples.end()) {
      footer += "Examples:\n" + it->second;
    }
    while (!footer.empty() && footer.back() == '\n') footer.pop_back();
    sub->footer(footer);
  });
}

std::string BashCompletion(const CLI::App& root) {
  const std::string name = root.get_name();
  std::string fn = "_" + name;
  for (char& c : fn) {
    if (c == '-') c = '_';
  }
  // Every option that takes a value, anywhere: its value is not a command.
  std::set<std::string> valued;
  std::ostringstream cases;
  std::vector<std::string> commands;
  auto add = [&](const CLI::App& app, const std::string& path) {
    std::vector<std::string> subs, opts;
    for (const CLI::App* s : app.get_subcommands({})) subs.push_back(s->get_name());
    std::vector<const CLI::Option*> all = VisibleOptions(app);
    for (const CLI::Option* o : InheritedOptions(app)) all.push_back(o);
    for (const CLI::Option* o : all) {
      if (o->get_positional()) continue;
      for (const std::string& f : Flags(*o)) {
        opts.push_back(f);
        if (TakesValue(*o)) valued.insert(f);
      }
    }
    opts.push_back("--help");
    if (app.get_version_ptr() != nullptr) opts.push_back("--version");
    cases << "    '" << path << "') subs='" << ShellWords(subs) << "'; opts='" << ShellWords(opts)
          << "' ;;\n";
  };
  add(root, "");
  ForEachCommand(root, [&](const CLI::App& app) {
    commands.push_back("'" + FullPath(app) + "'");
    add(app, FullPath(app));
  });
  std::vector<std::string> valued_list(valued.begin(), valued.end());
  std::string valued_pattern;
  for (const std::string& v : valued_list) valued_pattern += (valued_pattern.empty() ? "" : "|") + v;
  std::string command_pattern;
  for (const std::string& c : commands) command_pattern += (command_pattern.empty() ? "" : "|") + c;

  std::ostringstream out;
  out << "# bash completion for " << name << " (generated by `" << name
      << " completion bash`)\n"
      << fn << "() {\n"
      << "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" path='' word i subs opts\n"
      << "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      << "    word=\"${COMP_WORDS[i]}\"\n"
      << "    case \"$word\" in\n"
      << "      " << valued_pattern << ") ((i++)); continue ;;\n"
      << "      -*) continue ;;\n"
      << "    esac\n"
      << "    case \"${path:+$path }$word\" in\n"
      << "      " << command_pattern << ") path=\"${path:+$path }$word\" ;;\n"
      << "    esac\n"
      << "  done\n"
      << "  case \"$path\" in\n"
      << cases.str() << "  esac\n"
      << "  if [[ \"$cur\" == -* ]]; then\n"
      << "    COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
      << "  else\n"
      << "    COMPREPLY=($(compgen -W \"$subs\" -- \"$cur\"))\n"
      << "  fi\n"
      << "}\n"
      << "complete -o default -F " << fn << ' ' << name << '\n';
  return out.str();
}

std::string ManPage(const CLI::App& root, const std::string& version) {
  std::string upper = root.get_name();
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string summary = root.get_description();  // "modelreg: an event-sourced ..."
  if (summary.rfind(root.get_name() + ": ", 0) == 0) summary.erase(0, root.get_name().size() + 2);
  std::ostringstream out;
  out << ".TH " << upper << " 1 \"\" \"" << Roff(version) << "\" \"User Commands\"\n"
      << ".SH NAME\n" << Roff(root.get_name()) << " \\- " << Roff(summary) << '\n'
      << ".SH SYNOPSIS\n.B " << Roff(root.get_name())
      << "\n[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]\n"
      << ".SH GLOBAL OPTIONS\nThey may come before or after the command.\n";
  RoffOptions(VisibleOptions(root), out);
  out << ".SH COMMANDS\n";
  ForEachCommand(root, [&](const CLI::App& app) {
    out << ".SS " << Roff(FullPath(app)) << '\n' << Roff(app.get_description()) << '\n';
    std::vector<const CLI::Option*> opts = VisibleOptions(app);
    RoffOptions(opts, out);
    if (!app.get_footer().empty()) {
      out << ".PP\n.nf\n";
      std::istringstream lines(app.get_footer());
      for (std::string line; std::getline(lines, line);) out << Roff(line) << '\n';
      out << ".fi\n";
    }
  });
  out << ".SH SEE ALSO\nThe full manual: docs/cli.md in the modelreg sources.\n";
  return out.str();
}

const CLI::Validator kIsoTime(
    [](std::string& s) -> std::string {
      const auto t = ParseInstant(s, SystemClock::Instance().NowNs());
      if (!t) {
        return "'" + s + "' is not a time: use ISO-8601 with a zone (2025-01-15T09:30:00Z, "
                         "2025-01-15T11:30:00+02:00), a date (2025-01-15, midnight UTC), "
                         "now, or a time before now such as -2h (units s, m, h, d, w)";
      }
      s = FormatUtc(*t);
      return "";
    },
    "TIME");

}  // namespace modelreg::app
