#include "model/model_paths.h"

#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "model/known_models.h"

namespace cvq {

std::string model_cache_dir() {
  std::string home_dir;
  if (const char* h = std::getenv("COMMVQ_HOME"); h && *h)
    home_dir = h;
  else if (const char* h2 = std::getenv("HOME"); h2 && *h2)
    home_dir = std::string(h2) + "/.cache/commvq-bench";
  else
    home_dir = ".cache/commvq-bench";
  return home_dir + "/models";
}

std::string default_model_path() {
  if (const char* m = std::getenv("COMMVQ_MODEL"); m && *m) return m;
  return model_cache_dir() + "/" + find_known_model(kDefaultModelName)->file;
}

std::string resolve_model_path(const std::string& user_arg) {
  if (user_arg.empty()) {
    std::string p = default_model_path();
    if (!std::filesystem::exists(p)) {
      throw Error(p +
                  ": default model not found — run scripts/setup.sh (or scripts/get-model.sh), or pass --model PATH");
    }
    return p;
  }
  if (const KnownModel* m = find_known_model(user_arg)) {
    std::string p = model_cache_dir() + "/" + m->file;
    if (!std::filesystem::exists(p)) {
      throw Error(p + ": model '" + m->name + "' is not installed — run scripts/get-model.sh " + m->name);
    }
    return p;
  }
  return user_arg;
}

}  // namespace cvq
