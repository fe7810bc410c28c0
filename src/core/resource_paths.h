#pragma once
// Where the files the binary reads beside itself live: experiments/ (grids, paper.json), scripts/
// (plots, the llama.cpp benchmark) and, unless $COMMVQ_DATA says otherwise, data/.
#include <string>

namespace cvq {

// $COMMVQ_SHARE when set; else <directory of the executable>/../share/commvq-bench when it holds
// experiments/ (a binary laid out by `cmake --install`); else the checkout the binary was built from.
std::string share_dir();

// An experiment config named on the command line: the path itself when it exists, else the same
// relative path under share_dir(), else share_dir()/experiments/NAME[.json] ("quick" finds the
// installed experiments/quick.json). Unchanged when none exists (opening it then names it).
std::string find_experiment_file(const std::string& arg);

}  // namespace cvq
