#include "support/test_env.h"

#include <cblas.h>

#include <cstdlib>
#include <cstring>

#include "model/known_models.h"
#include "model/model_paths.h"
#include "tasks/data_paths.h"

namespace cvq::test {

// As the CLI does (apply_common_options): OpenBLAS must not start its own threads inside the pool's
// workers. Every test binary links this file; without it two concurrent tests oversubscribe the
// cores (an 8K-token perplexity test took 290 s instead of 24 s).
const bool kBlasSingleThreaded = [] {
  openblas_set_num_threads(1);
  return true;
}();

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && (std::strcmp(ci, "true") == 0 || std::strcmp(ci, "1") == 0);
}

std::string model_path() { return default_model_path(); }
std::string known_model_path(const std::string& name) {
  const KnownModel* m = find_known_model(name);
  return m ? model_cache_dir() + "/" + m->file : name;
}
std::string data_file(const std::string& relative) { return data_path(relative); }
std::string fixture_path(const std::string& name) { return test_source_dir() + "/tests/fixtures/" + name; }
std::string test_source_dir() { return COMMVQ_TEST_SOURCE_DIR; }

}  // namespace cvq::test
