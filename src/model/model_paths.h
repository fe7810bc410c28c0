#pragma once
// Where models live, so every subcommand can run without --model, or with a known model's name.
#include <string>

namespace cvq {

// $COMMVQ_HOME/models, else ~/.cache/commvq-bench/models.
std::string model_cache_dir();
// $COMMVQ_MODEL, else the default known model's file in model_cache_dir().
std::string default_model_path();
// --model as the user gave it: empty → the default; a known model's name (known_models.h) → its file
// in the model cache (an error says how to install it when it is not there); anything else is a path.
std::string resolve_model_path(const std::string& user_arg);

}  // namespace cvq
