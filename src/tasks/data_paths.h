#pragma once
// Where evaluation data is found: $COMMVQ_DATA, else <checkout>/data (filled by scripts/get-data.sh).
#include <string>
#include <vector>

namespace cvq {

std::string data_dir();
std::string data_path(const std::string& relative);  // data_dir() + "/" + relative
// The default calibration text of `collect` and `calibrate-kvquant`: the six Jane Austen novels.
std::vector<std::string> calibration_text_paths();

}  // namespace cvq
