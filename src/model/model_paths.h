#pragma once
// Where the default model lives, so every subcommand can run without --model.
#include <string>

namespace cvq {

inline constexpr const char* kDefaultModelFile = "SmolLM2-135M-Instruct.Q4_1.gguf";

// $COMMVQ_MODEL, else $COMMVQ_HOME/models/<default>, else ~/.cache/commvq-bench/models/<default>.
std::string default_model_path();
// The user's path if given; otherwise the default, with an error that says how to install it.
std::string resolve_model_path(const std::string& user_path);
std::string project_source_dir();  // the checkout this binary was built from

}  // namespace cvq
