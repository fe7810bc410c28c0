#pragma once
// A whole JSON file, parsed; errors name the file ("not found", "not valid JSON: ...").
#include <nlohmann/json.hpp>

#include <string>

namespace cvq {

nlohmann::json read_json_file(const std::string& path);

}  // namespace cvq
