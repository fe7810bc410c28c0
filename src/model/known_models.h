#pragma once
// The models this project knows by name (`--model qwen2.5-coder-1.5b`): the file scripts/get-model.sh
// installs for each (datasets/models.tsv, which also holds the download source and checksum; a unit
// test checks the two agree) and where the project keeps its codebooks for it.
#include <string>
#include <vector>

namespace cvq {

struct KnownModel {
  std::string name;  // e.g. "qwen2.5-coder-1.5b"
  std::string file;  // file name in the model cache
  std::string description;
};

const std::vector<KnownModel>& known_models();
const KnownModel* find_known_model(const std::string& name);  // nullptr if not known
inline constexpr const char* kDefaultModelName = "smollm2-135m";

// Default CommVQ codebook for a known model: results/codebooks/<name>-commvq-<bits>bit.safetensors
// (relative to the working directory, as experiment configs name it).
std::string default_codebook_path(const std::string& model_name, int bits);
// Default KVQuant calibration: results/codebooks/<name>.kvquant.safetensors.
std::string default_kvquant_calib_path(const std::string& model_name);

}  // namespace cvq
