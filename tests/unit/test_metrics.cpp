// Benchmark metrics against hand-worked cases. Each expected value was worked out by hand from the
// reference implementation's code (LongBench metrics.py, the `rouge` 1.0.1 package, fuzzywuzzy 0.18 +
// difflib, InfiniteBench compute_scores.py, lm-eval-harness's gsm8k filters) and checked against the
// Python packages themselves; the comments show the working.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "core/py_random.h"
#include "tasks/aggregate.h"
#include "tasks/metrics.h"
#include "tasks/scoring.h"

namespace cvq {
namespace {

using namespace cvq::metrics;

// ---- text helpers ---------------------------------------------------------------------------

TEST(MetricsText, PythonLowerAndSplit) {
  EXPECT_EQ(py_lower("Ça va, ÉLODIE"), "ça va, élodie");
  EXPECT_EQ(py_lower("İstanbul"), "i\u0307stanbul");  // full case mapping of U+0130
  EXPECT_EQ(py_lower("ΣΑΣ"), "σας");                  // final sigma
  EXPECT_EQ(py_split("  a\u00a0b\u3000c\n\td  "), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_TRUE(py_split(" \n ").empty());
  EXPECT_EQ(split_on("a..b", "."), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_EQ(first_line("\n\nfirst\nsecond"), "first");
}

TEST(MetricsText, InvalidUtf8IsReplaced) {
  EXPECT_EQ(sanitize_utf8("ok\xff!"), "ok\uFFFD!");
  EXPECT_EQ(sanitize_utf8("\xe2\x82"), "\uFFFD");  // a truncated 3-byte sequence is one U+FFFD
  EXPECT_EQ(sanitize_utf8("é"), "é");
  EXPECT_EQ(utf8_to_u32("aé€😀").size(), 4u);
}

// ---- LongBench qa_f1 -----------------------------------------------------------------------

TEST(MetricsQaF1, Normalization) {
  // lower -> drop ASCII punctuation -> \b(a|an|the)\b -> " " -> squeeze
  EXPECT_EQ(normalize_answer("The cat sat on the mat."), "cat sat on mat");
  EXPECT_EQ(normalize_answer("Ça va, Élodie!"), "ça va élodie");
  EXPECT_EQ(normalize_answer("theater"), "theater");        // no word boundary inside "theater"
  EXPECT_EQ(normalize_answer("café the end"), "café end");  // Unicode \w: "é" ends a word
  EXPECT_EQ(normalize_answer("x\u00a0the\u3000y"), "x y");  // Unicode whitespace
  EXPECT_EQ(normalize_answer("the-end"), "theend");         // punctuation goes first
}

TEST(MetricsQaF1, HandWorked) {
  EXPECT_DOUBLE_EQ(qa_f1("The cat sat on the mat.", "A cat sat on a mat"), 1.0);
  // [paris, france] vs [paris]: common 1, P = 1/2, R = 1, F1 = 2/3
  EXPECT_DOUBLE_EQ(qa_f1("Paris, France", "Paris"), 2.0 / 3.0);
  // multiset: [x, y, y] vs [y, y, z]: common 2, P = R = 2/3
  EXPECT_DOUBLE_EQ(qa_f1("x y y", "y y z"), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(qa_f1("", "Paris"), 0.0);
  EXPECT_DOUBLE_EQ(qa_f1("the", "the"), 0.0);  // both normalize to nothing: no common tokens
  EXPECT_DOUBLE_EQ(qa_f1("Élodie", "élodie"), 1.0);
}

TEST(MetricsLongBench, MaxOverGoldsAndFirstLine) {
  // max over golds: "Bob Dylan" vs "Dylan" = 2/3, vs "Bob Dylan" = 1
  EXPECT_DOUBLE_EQ(longbench_score("hotpotqa", "Bob Dylan", {"Dylan", "Bob Dylan"}, {}), 1.0);
  EXPECT_DOUBLE_EQ(longbench_score("hotpotqa", "Bob Dylan", {"Dylan"}, {}), 2.0 / 3.0);
  // triviaqa scores only the first line of pred.lstrip('\n')
  EXPECT_DOUBLE_EQ(longbench_score("triviaqa", "\n55\nfifty-five miles", {"55"}, {}), 1.0);
  EXPECT_DOUBLE_EQ(longbench_score("hotpotqa", "\n55\nmiles", {"55"}, {}), 2.0 / 3.0);  // no first-line rule
  EXPECT_EQ(std::string(longbench_metric_name(longbench_metric("lcc"))), "code_sim");
  EXPECT_THROW(longbench_metric("dureader"), Error);
}

// ---- ROUGE-L (rouge 1.0.1, summary level) ----------------------------------------------------

TEST(MetricsRougeL, SingleSentence) {
  // hyp unique words {the, cat, sat, on, mat} n = 5; ref {the, cat, is, on, mat} m = 5.
  // LCS "the cat on the mat" -> set {the, cat, on, mat} = 4; R = P = 0.8; F = 2·0.64/(1.6 + 1e-8).
  EXPECT_NEAR(rouge_l("the cat sat on the mat", "the cat is on the mat"), 0.7999999950000002, 1e-15);
}

TEST(MetricsRougeL, UnionOverSentences) {
  // hyp ["A b", "C d"], ref ["A c", "B d"] (case-sensitive words). ref1: LCS with "A b" = {A},
  // with "C d" = {} -> 1 new; ref2: {} and {d} -> union {A, d}, 1 new. llcs = 2, m = n = 4.
  EXPECT_NEAR(rouge_l("A b. C d.", "A c. B d."), 0.4999999950000001, 1e-15);
  // Both hypothesis sentences cover the same reference words: the union counts them once.
  EXPECT_NEAR(rouge_l("a b. a b", "a b"), 0.999999995, 1e-15);
}

TEST(MetricsRougeL, BacktraceTieBreakIsThePackages) {
  // ref "a b" vs hyp "b a": LCS length 1; the package's back-trace keeps {b} (it moves left on a
  // tie). With the second hyp sentence "a" the union is {a, b}: llcs = 2, m = n = 2 -> F ~ 1.
  // (Keeping {a} instead would give 0.5.)
  EXPECT_NEAR(rouge_l("b a. a", "a b"), 0.999999995, 1e-15);
}

TEST(MetricsRougeL, FailuresScoreZero) {
  EXPECT_EQ(rouge_l("", "abc"), 0.0);     // no sentences: the package raises, LongBench scores 0
  EXPECT_EQ(rouge_l("...", "abc"), 0.0);  // every piece empty
  EXPECT_EQ(rouge_l(" ", "abc"), 0.0);    // one empty sentence [""]: no exception, no overlap
  EXPECT_EQ(rouge_l("abc", ""), 0.0);
  EXPECT_NEAR(rouge_1("the cat sat on the mat", "the cat is on the mat"), 0.7999999950000002, 1e-15);
}

// ---- classification / retrieval / count ------------------------------------------------------

TEST(MetricsClassification, HandWorked) {
  // matches [Date, Individual]; gold in list -> 1/2
  EXPECT_DOUBLE_EQ(classification("Individual or Date", "Individual", {"Date", "Individual", "Title of a person"}),
                   0.5);
  // "Other" is a substring of the gold but not equal: dropped -> [Other location] -> 1
  EXPECT_DOUBLE_EQ(classification("Other location", "Other location", {"Other", "Other location", "City"}), 1.0);
  // Python removes while iterating: dropping "Ot" skips "Oth", which stays -> 1/2 (as LongBench does)
  EXPECT_DOUBLE_EQ(classification("Other location", "Other location", {"Ot", "Oth", "Other location"}), 0.5);
  EXPECT_DOUBLE_EQ(classification("", "Date", {"Date"}), 0.0);
  EXPECT_DOUBLE_EQ(classification("Food", "Date", {"Date", "Food"}), 0.0);
}

TEST(MetricsRetrievalCount, HandWorked) {
  EXPECT_DOUBLE_EQ(retrieval("Paragraph 12", "Paragraph 12"), 1.0);
  EXPECT_DOUBLE_EQ(retrieval("Paragraph 3, not Paragraph 12", "Paragraph 12"), 0.5);
  EXPECT_DOUBLE_EQ(retrieval("", "Paragraph 12"), 0.0);
  EXPECT_DOUBLE_EQ(retrieval("12 ١٢", "Paragraph 12"), 0.5);  // \d is Unicode: "١٢" counts but differs
  EXPECT_THROW(retrieval("1", "no paragraph"), Error);
  EXPECT_DOUBLE_EQ(count("There are 5 unique paragraphs, not 15", "5"), 0.5);
  EXPECT_DOUBLE_EQ(count("five", "5"), 0.0);
}

// ---- code_sim: fuzz.ratio over difflib.SequenceMatcher --------------------------------------

TEST(MetricsCodeSim, FuzzRatio) {
  EXPECT_EQ(fuzz_ratio("abcd", "bcde"), 75);  // M = 3 ("bcd"), T = 8 -> 75
  EXPECT_EQ(fuzz_ratio("", ""), 100);         // equivalence is checked before emptiness
  EXPECT_EQ(fuzz_ratio("", "x"), 0);
  EXPECT_EQ(fuzz_ratio("abcdefgh", "azzzzzzz"), 12);  // 2·1/16 = 0.125 -> 12.5 -> 12 (half to even)
  EXPECT_EQ(fuzz_ratio("abcdefgh", "abczzzzz"), 38);  // 2·3/16 -> 37.5 -> 38
  EXPECT_EQ(fuzz_ratio("héllo", "hello"), 80);        // code points: M = 4, T = 10
}

TEST(MetricsCodeSim, AutojunkLikeDifflib) {
  const std::u32string a200(200, U'a');
  // b has 200 items: "a" occurs more than 200/100 + 1 times, so it is "popular" and cannot start a
  // match; "b" + "aaaaaaaaaa" then has no match at all with autojunk, 10 without.
  const std::u32string a = U"b" + std::u32string(10, U'a');
  EXPECT_DOUBLE_EQ(sequence_matcher_ratio(a, a200, true), 0.0);
  EXPECT_DOUBLE_EQ(sequence_matcher_ratio(a, a200, false), 20.0 / 211.0);
  // A popular element can still extend a match that a non-popular one started: "x" matches, then
  // the following "a" joins it. M = 2.
  EXPECT_DOUBLE_EQ(sequence_matcher_ratio(U"xa", U"x" + std::u32string(199, U'a'), true), 4.0 / 202.0);
  EXPECT_DOUBLE_EQ(sequence_matcher_ratio(U"", U"", true), 1.0);
}

TEST(MetricsCodeSim, FirstCodeLine) {
  // lines with ` # // are skipped; the first remaining line is compared
  EXPECT_DOUBLE_EQ(code_sim("```python\n# comment\n    if x:\n", "    if x:"), 1.0);
  EXPECT_DOUBLE_EQ(code_sim("// only comments", "x = 1"), 0.0);  // nothing left: "" vs gold -> 0
  EXPECT_DOUBLE_EQ(code_sim("abcd", "bcde"), 0.75);
}

// ---- InfiniteBench ---------------------------------------------------------------------------

TEST(MetricsInfiniteBench, PasskeyAndNumberString) {
  EXPECT_EQ(first_int_match("The pass key is 71432."), "71432");
  EXPECT_EQ(first_int_match("no digits"), "");
  EXPECT_EQ(first_int_match("abc 12a34"), "12");
  EXPECT_EQ(first_int_match("٣ then 123"), "123");  // non-ASCII digits are separators
  EXPECT_TRUE(passkey_correct("The pass key is 71432.", "71432"));
  EXPECT_FALSE(passkey_correct(" 071432", "71432"));
  EXPECT_FALSE(passkey_correct("", "71432"));
  EXPECT_TRUE(number_string_correct("3000077442 is it", "3000077442"));
  EXPECT_FALSE(number_string_correct("300007744", "3000077442"));
}

TEST(MetricsInfiniteBench, KvRetrieval) {
  EXPECT_TRUE(kv_retrieval_correct("The value associated with the key is: \"c14cb8ba-002b\".", "c14cb8ba-002b"));
  EXPECT_TRUE(kv_retrieval_correct("{\"k\":'c14cb8ba-002b'}", "c14cb8ba-002b"));
  EXPECT_FALSE(kv_retrieval_correct("c14cb8ba-002bX", "c14cb8ba-002b"));
  EXPECT_FALSE(kv_retrieval_correct("", "c14cb8ba-002b"));
}

// ---- GSM8K -----------------------------------------------------------------------------------

TEST(MetricsGsm8k, Extraction) {
  const std::string gold = "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs.\n#### 18";
  EXPECT_EQ(gsm8k_extract_strict("so she makes 18.\n#### 18"), "18");
  EXPECT_TRUE(gsm8k_match(gsm8k_extract_strict("so she makes 18.\n#### 18"), gold));
  EXPECT_EQ(gsm8k_extract_strict("The answer is 18"), "[invalid]");
  EXPECT_FALSE(gsm8k_match("[invalid]", gold));
  EXPECT_TRUE(gsm8k_match(gsm8k_extract_strict("#### 1,000"), "#### 1000"));  // "," is ignored
  // flexible: last match of (-?[$0-9.,]{2,})|(-?[0-9]+)
  EXPECT_EQ(gsm8k_extract_flexible("She makes 9 * 2 = 18 dollars"), "18");
  EXPECT_TRUE(gsm8k_match(gsm8k_extract_flexible("She makes 9 * 2 = 18 dollars"), gold));
  // "$18.00." -> "$", then "\.$" removed -> "18.00" != "18" (lm-eval behaves the same)
  EXPECT_EQ(gsm8k_extract_flexible("The answer is $18.00."), "$18.00.");
  EXPECT_FALSE(gsm8k_match(gsm8k_extract_flexible("The answer is $18.00."), gold));
  EXPECT_TRUE(gsm8k_match(gsm8k_extract_flexible("It is $18."), gold));
  EXPECT_EQ(gsm8k_extract_flexible("none"), "[invalid]");
  EXPECT_EQ(gsm8k_gold(gold), "18");
  EXPECT_EQ(strip_calculator_annotations("2/2=<<2/2=1>>1 bolt"), "2/2=1 bolt");
}

TEST(MetricsGsm8k, ScoreSampleStrictAndFlexible) {
  const SampleScore s = score_sample("gsm8k", "9 * 2 = 18", "#### 18");
  EXPECT_EQ(s.score, 0.0);  // no "#### "
  EXPECT_EQ(s.extra["flexible_extract"].get<double>(), 1.0);
}

// ---- NIAH ------------------------------------------------------------------------------------

TEST(MetricsNiah, Rouge1AndContainment) {
  // p: [the best thing is to eat a sandwich] (8), r: [the best thing is eat a sandwich] (7),
  // overlap 7: P = 7/8, R = 1, F = 14/15
  EXPECT_DOUBLE_EQ(niah_rouge1("The best thing is to eat a sandwich.", "the best thing is eat a sandwich"),
                   14.0 / 15.0);
  EXPECT_EQ(niah_rouge1("", "x"), 0.0);
  EXPECT_TRUE(
      contains_normalized("So: eat a sandwich and sit in Dolores Park!", "eat a sandwich and sit in Dolores Park"));
  EXPECT_FALSE(contains_normalized("eat a sandwich", "eat a sandwich and sit"));
}

// ---- scoring dispatch and aggregation --------------------------------------------------------

TEST(MetricsScoring, DispatchAndErrors) {
  EXPECT_EQ(score_sample("passkey", "12345", nlohmann::json::array({"12345"})).score, 1.0);
  EXPECT_EQ(score_sample("longbench", "Paragraph 2",
                         {{"dataset", "passage_retrieval_en"}, {"answers", {"Paragraph 2"}}, {"all_classes", nullptr}})
                .score,
            1.0);
  EXPECT_THROW(score_sample("nope", "x", "y"), Error);
  EXPECT_THROW(score_sample("longbench", "x", "y"), Error);
  EXPECT_THROW(score_sample("passkey", "x", nlohmann::json::object()), Error);
}

TEST(MetricsAggregate, RoundingLikePython) {
  EXPECT_EQ(round2(89.0), 89.0);
  EXPECT_EQ(round2(100.0 * 2.0 / 3.0), 66.67);
  EXPECT_EQ(round2(0.125), 0.12);  // exact tie: half to even, as Python's round
  EXPECT_EQ(round2(0.375), 0.38);
  std::vector<nlohmann::json> recs = {{{"id", "a"}, {"score", 1.0}, {"extra", {{"flexible_extract", 1.0}}}},
                                      {{"id", "b"}, {"score", 0.0}, {"extra", {{"flexible_extract", 1.0}}}},
                                      {{"id", "c"}, {"score", 0.0}, {"extra", {{"flexible_extract", 0.0}}}}};
  const auto a = aggregate_records("gsm8k", recs);
  EXPECT_EQ(a["score"].get<double>(), 33.33);
  EXPECT_EQ(a["extra"]["flexible_extract"].get<double>(), 66.67);
  EXPECT_EQ(a["n"].get<int>(), 3);
  const auto p = aggregate_records("perplexity", {{{"id", "w0"}, {"nll_sum", 10.0}, {"n_scored", 5}},
                                                  {{"id", "w1"}, {"nll_sum", 20.0}, {"n_scored", 5}}});
  EXPECT_DOUBLE_EQ(p["score"].get<double>(), std::exp(3.0));
  // Windows' mean NLL 2 and 4: pooled 3, s = √2, t(1) = 12.706: exp(3 ± 12.706·√2/√2).
  EXPECT_NEAR(p["interval"][0].get<double>(), std::exp(3.0 - 12.706), 1e-9);
  EXPECT_NEAR(p["interval"][1].get<double>(), std::exp(3.0 + 12.706), 1e-3);
}

TEST(MetricsAggregate, SamplingIntervals) {
  // 6 of 10 passed: the Wilson 95% interval is [0.3127, 0.8318] (standard tables).
  std::vector<nlohmann::json> recs;
  for (int i = 0; i < 10; ++i) recs.push_back({{"id", std::to_string(i)}, {"score", i < 6 ? 1.0 : 0.0}});
  const auto a = aggregate_records("passkey", recs);
  EXPECT_EQ(a["score"].get<double>(), 60.0);
  EXPECT_EQ(a["interval"][0].get<double>(), 31.27);
  EXPECT_EQ(a["interval"][1].get<double>(), 83.18);
  // 0 of 5: Wilson does not collapse to a point.
  recs.assign(5, {{"id", "x"}, {"score", 0.0}});
  const auto z = aggregate_records("passkey", recs);
  EXPECT_EQ(z["interval"][0].get<double>(), 0.0);
  EXPECT_EQ(z["interval"][1].get<double>(), 43.45);
  // Graded scores 0.2, 0.4, 0.6: mean 0.4, s 0.2, t(2) 4.303: 0.4 ± 0.4969 clipped at 0.
  const auto g = aggregate_records(
      "longbench", {{{"id", "a"}, {"score", 0.2}}, {{"id", "b"}, {"score", 0.4}}, {{"id", "c"}, {"score", 0.6}}});
  EXPECT_EQ(g["interval"][0].get<double>(), 0.0);
  EXPECT_EQ(g["interval"][1].get<double>(), round2(100.0 * (0.4 + 4.303 * 0.2 / std::sqrt(3.0))));
  // One sample: no interval.
  EXPECT_TRUE(aggregate_records("passkey", {{{"id", "a"}, {"score", 1.0}}})["interval"].is_null());
  EXPECT_EQ(t_quantile_95(7), 2.365);
  EXPECT_EQ(t_quantile_95(1000), 1.96);
}

// ---- Python's random, for lm-eval's few-shot draws ------------------------------------------

TEST(PyRandom, MatchesCPython) {
  // python3 -c "import random; r=random.Random(1234); print([r.sample(range(7473),5) for _ in range(3)])"
  PyRandom r(1234);
  EXPECT_EQ(r.sample(7473, 5), (std::vector<int64_t>{6374, 3610, 957, 61, 742}));
  EXPECT_EQ(r.sample(7473, 5), (std::vector<int64_t>{7462, 6610, 4769, 286, 5501}));
  EXPECT_EQ(r.sample(7473, 5), (std::vector<int64_t>{5677, 687, 806, 6279, 2905}));
  // random.Random(0).random() == 0.8444218515250481; small populations use the pool branch:
  // random.Random(7).sample(range(10), 4) == [5, 2, 6, 9]
  EXPECT_DOUBLE_EQ(PyRandom(0).random(), 0.8444218515250481);
  EXPECT_EQ(PyRandom(7).sample(10, 4), (std::vector<int64_t>{5, 2, 6, 9}));
}

}  // namespace
}  // namespace cvq
