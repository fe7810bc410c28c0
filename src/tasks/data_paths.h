#pragma once
// Where evaluation data is found: $COMMVQ_DATA, else <checkout>/data (filled by scripts/get-data.sh).
#include <string>

namespace cvq {

std::string data_dir();
std::string data_path(const std::string& relative);  // data_dir() + "/" + relative

}  // namespace cvq
