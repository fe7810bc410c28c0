#include "tasks/data_paths.h"

#include <cstdlib>

#include "core/resource_paths.h"

namespace cvq {

std::string data_dir() {
  if (const char* d = std::getenv("COMMVQ_DATA"); d && *d) return d;
  return share_dir() + "/data";
}

std::string data_path(const std::string& relative) { return data_dir() + "/" + relative; }

std::vector<std::string> calibration_text_paths() {
  std::vector<std::string> paths;
  for (const char* b : {"emma", "prideprejudice", "sensesensibility", "mansfieldpark", "persuasion", "northangerabbey"})
    paths.push_back(data_path(std::string("text/jane_austen/") + b + ".txt"));
  return paths;
}

}  // namespace cvq
