// A small "pricing service" that embeds the ProductionModelLoader
// (docs/loader.md). It follows the production risk_model of a registry —
// a local directory, or a server with a token — and prices with whatever
// model is current, without ever stopping.
//
//   build/tools/examples/modelreg-loader-example --root ./data/demo --seconds 30
//   build/tools/examples/modelreg-loader-example --url http://127.0.0.1:8080
//       --token "$MODELREG_TOKEN" --seconds 30     (one line)
#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "loader/production_loader.h"

namespace {

// What this service makes of an artifact. A real one would deserialize
// weights; here the "model" is the file's bytes and a checksum-like score.
struct RiskModel {
  std::string version;
  std::size_t bytes = 0;
  double Price(double exposure) const { return exposure * (1.0 + static_cast<double>(bytes % 97) / 1000.0); }
};

modelreg::Result<std::shared_ptr<const void>> LoadRiskModel(const modelreg::loader::ModelFile& f) {
  std::ifstream in(f.path, std::ios::binary);
  if (!in) return modelreg::Err(modelreg::Status::IOError("cannot open " + f.path));
  const std::string content((std::istreambuf_iterator<char>(in)), {});
  if (content.empty()) return modelreg::Err(modelreg::Status::InvalidArgument("empty model file"));
  auto model = std::make_shared<RiskModel>();
  model->version = f.version;
  model->bytes = content.size();
  return std::shared_ptr<const void>(std::move(model));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"modelreg-loader-example: a service that hot-reloads its production model"};
  modelreg::loader::LoaderOptions options;
  options.model_type = "risk_model";
  options.consumer_id = "pricing-example";
  int seconds = 10;
  app.add_option("--root", options.root, "Follow this registry directory");
  app.add_option("--url", options.url, "... or this server");
  app.add_option("--token", options.token, "Bearer token for --url (model:read)");
  app.add_option("--type", options.model_type, "Model type")->capture_default_str();
  app.add_option("--seconds", seconds, "How long to run")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (!options.url.empty()) options.cache_dir = "/tmp/modelreg-loader-example-cache";
  options.on_swap = [](const modelreg::loader::Loaded& l) {
    std::cout << "now serving " << l.file.version << " (sha256 " << l.file.sha256.substr(0, 12) << ")\n";
  };
  options.on_error = [](const std::string& m) { std::cout << "loader: " << m << '\n'; };

  auto loader = modelreg::loader::ProductionModelLoader::Start(options, LoadRiskModel);
  if (!loader) {
    std::cerr << "cannot start: " << loader.error().ToString() << '\n';
    return 1;
  }
  // The service's request loop: every request takes the current model and
  // keeps it (a shared_ptr) for the whole request, even if a swap happens.
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    std::shared_ptr<const modelreg::loader::Loaded> current = (*loader)->Current();
    if (current) {
      const auto* model = static_cast<const RiskModel*>(current->model.get());
      std::cout << "priced 1,000,000 with " << model->version << ": " << model->Price(1e6) << '\n';
    } else {
      std::cout << "no production model yet\n";
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return 0;
}
