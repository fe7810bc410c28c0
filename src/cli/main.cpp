// commvq-bench: CommVQ KV-cache compression, reproduced and benchmarked on real models.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "cli/commands/common.h"
#include "core/error.h"
#include "core/resource_paths.h"

int main(int argc, char** argv) {
  CLI::App app{"commvq-bench — CommVQ KV-cache compression: run, evaluate and benchmark LLaMA-family models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", [] {
    return "commvq-bench 0.1.0\nshare: " + cvq::share_dir() + " (experiments/, scripts/; data/ unless $COMMVQ_DATA)";
  });
  cvq::register_info(app);
  cvq::register_generate(app);
  cvq::register_eval(app);
  cvq::register_plan(app);
  cvq::register_score(app);
  cvq::register_tables(app);
  cvq::register_bench(app);
  cvq::register_memory(app);
  cvq::register_collect(app);
  cvq::register_calibrate_kvquant(app);
  cvq::register_train(app);
  cvq::register_convert(app);
  cvq::register_attention_error(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const cvq::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
