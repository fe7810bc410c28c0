#pragma once
// Scoring functions of the public benchmarks, reimplemented to give the reference scripts' numbers:
// LongBench's metrics.py (qa_f1, rouge-L via the `rouge` package, classification, retrieval, count,
// code_sim via fuzzywuzzy + difflib), InfiniteBench's compute_scores.py (passkey, number_string,
// kv_retrieval), lm-eval-harness's GSM8K filters, and the needle-in-a-haystack scores.
//
// Texts are UTF-8. Python semantics are followed on code points (tasks/py_text.h): str.lower()
// (simple case mapping, plus U+0130), str.split() on Unicode whitespace, Unicode \d \w \b (PCRE2
// UCP), len() in code points. Invalid UTF-8 is first replaced by U+FFFD, as a tokenizer's
// decode(errors="replace") does. One source file per benchmark: metrics_{longbench,infinitebench,
// gsm8k,niah}.cpp.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tasks/py_text.h"

namespace cvq::metrics {

// ---- LongBench (THUDM LongBench/metrics.py); all return [0, 1] ----
std::string normalize_answer(std::string_view s);  // lower, drop ASCII punctuation, a/an/the -> " ", squeeze
double qa_f1(std::string_view prediction, std::string_view gold);
// `rouge` (pltrdy) 1.0.1 Rouge().get_scores([pred], [gold], avg=True)["rouge-l"]["f"]; 0 where it
// raises (a side with no sentences, e.g. "" or "..."). Python's recursion limit in the package's
// LCS back-trace (sentences of ~1000 words) is not imitated.
double rouge_l(std::string_view prediction, std::string_view gold);
// The same package's rouge-1 F (sets of unigrams over the '.'-split sentences).
double rouge_1(std::string_view prediction, std::string_view gold);
double classification(std::string_view prediction, std::string_view gold, const std::vector<std::string>& all_classes);
double retrieval(std::string_view prediction, std::string_view gold);  // gold like "Paragraph 12"
double count(std::string_view prediction, std::string_view gold);
double code_sim(std::string_view prediction, std::string_view gold);
// difflib.SequenceMatcher(None, a, b, autojunk).ratio() on code points.
double sequence_matcher_ratio(std::u32string_view a, std::u32string_view b, bool autojunk = true);
// Matched characters (sum of matching block sizes) of the same algorithm.
int64_t sequence_matcher_matches(std::u32string_view a, std::u32string_view b, bool autojunk = true);
int fuzz_ratio(std::string_view a, std::string_view b);  // fuzzywuzzy 0.18 fuzz.ratio (difflib backend)

enum class LongBenchMetric { QaF1, RougeL, Classification, Retrieval, Count, CodeSim };
// The metric LongBench uses for an (English) dataset name; throws Error for unknown names.
LongBenchMetric longbench_metric(const std::string& dataset);
const char* longbench_metric_name(LongBenchMetric m);
// LongBench's per-sample score: first line only for trec/triviaqa/samsum/lsht, then max over golds.
double longbench_score(const std::string& dataset, std::string_view prediction, const std::vector<std::string>& golds,
                       const std::vector<std::string>& all_classes);

// ---- InfiniteBench (OpenBMB InfiniteBench/src/compute_scores.py) ----
std::string first_int_match(std::string_view prediction);  // first maximal run of ASCII digits ("" if none)
bool passkey_correct(std::string_view prediction, std::string_view label);
bool number_string_correct(std::string_view prediction, std::string_view label);
bool kv_retrieval_correct(std::string_view prediction, std::string_view label);

// ---- GSM8K (lm-eval-harness gsm8k.yaml: strict-match and flexible-extract) ----
std::string gsm8k_gold(std::string_view answer);              // text after the last "#### ", normalized
std::string gsm8k_extract_strict(std::string_view output);    // first "#### (-?[0-9.,]+)" or "[invalid]"
std::string gsm8k_extract_flexible(std::string_view output);  // last match of (-?[$0-9.,]{2,})|(-?[0-9]+)
// exact_match with regexes_to_ignore [",", "\$", "(?s).*#### ", "\.$"], ignore_case.
bool gsm8k_match(std::string_view extracted, std::string_view gold_answer);
std::string strip_calculator_annotations(std::string_view s);  // removes "<<...>>"

// ---- Needle in a haystack ----
// ROUGE-1 F of lowercase alphanumeric tokens (multiset overlap), as the rouge-score package without
// stemming computes it; and "every word of the needle's answer occurs in the output".
double niah_rouge1(std::string_view prediction, std::string_view needle);
bool contains_normalized(std::string_view prediction, std::string_view answer);

}  // namespace cvq::metrics
