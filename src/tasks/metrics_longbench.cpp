// LongBench's metrics.py (THUDM/LongBench): qa_f1, rouge (the `rouge` package), classification, retrieval,
// count, code_sim (fuzzywuzzy's fuzz.ratio over difflib's SequenceMatcher), and the per-dataset choice.
#include "tasks/metrics.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <set>
#include <unordered_map>
#include <utility>

#include "core/error.h"
#include "tasks/py_text.h"

namespace cvq::metrics {
namespace {

double f1_from_tokens(const std::vector<std::string>& pred, const std::vector<std::string>& gold) {
  std::map<std::string, int> cp, cg;
  for (const auto& w : pred) ++cp[w];
  for (const auto& w : gold) ++cg[w];
  int same = 0;
  for (const auto& [w, n] : cp) {
    auto it = cg.find(w);
    if (it != cg.end()) same += std::min(n, it->second);
  }
  if (same == 0) return 0.0;
  const double precision = 1.0 * same / static_cast<double>(pred.size());
  const double recall = 1.0 * same / static_cast<double>(gold.size());
  return (2 * precision * recall) / (precision + recall);
}

// `rouge` package: [" ".join(p.split()) for p in text.split(".") if len(p) > 0]
std::vector<std::string> rouge_sentences(std::string_view text) {
  std::vector<std::string> out;
  for (const auto& piece : split_on(text, ".")) {
    if (piece.empty()) continue;
    std::string joined;
    for (const auto& w : py_split(piece)) joined += (joined.empty() ? "" : " ") + w;
    out.push_back(joined);
  }
  return out;
}

std::vector<std::string> rouge_words(const std::vector<std::string>& sentences) {
  std::vector<std::string> out;
  for (const auto& s : sentences)
    for (auto& w : split_on(s, " ")) out.push_back(std::move(w));
  return out;
}

// rouge_score._recon_lcs(x, y): the words of the back-traced LCS (same tie-breaking), as a set.
std::set<std::string> recon_lcs(const std::vector<std::string>& x, const std::vector<std::string>& y) {
  const size_t n = x.size(), m = y.size();
  std::vector<int> table((n + 1) * (m + 1), 0);
  auto T = [&](size_t i, size_t j) -> int& { return table[i * (m + 1) + j]; };
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j)
      T(i, j) = (x[i - 1] == y[j - 1]) ? T(i - 1, j - 1) + 1 : std::max(T(i - 1, j), T(i, j - 1));
  std::set<std::string> out;
  size_t i = n, j = m;
  while (i > 0 && j > 0) {
    if (x[i - 1] == y[j - 1]) {
      out.insert(x[i - 1]);
      --i, --j;
    } else if (T(i - 1, j) > T(i, j - 1)) {
      --i;
    } else {
      --j;
    }
  }
  return out;
}

const Regex& re_articles() {
  static const Regex r("\\b(a|an|the)\\b");
  return r;
}
const Regex& re_digits() {
  static const Regex r("\\d+");
  return r;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// LongBench

std::string normalize_answer(std::string_view s_in) {
  std::string s = py_lower(sanitize_utf8(s_in));
  std::string no_punct;
  no_punct.reserve(s.size());
  static const std::string_view kPunct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  for (char c : s)
    if (kPunct.find(c) == std::string_view::npos) no_punct += c;
  const std::string no_articles = re_articles().replace_all(no_punct, " ");
  std::string out;
  for (const auto& w : py_split(no_articles)) out += (out.empty() ? "" : " ") + w;
  return out;
}

double qa_f1(std::string_view prediction, std::string_view gold) {
  return f1_from_tokens(py_split(normalize_answer(prediction)), py_split(normalize_answer(gold)));
}

double rouge_l(std::string_view prediction_in, std::string_view gold_in) {
  const std::string prediction = sanitize_utf8(prediction_in), gold = sanitize_utf8(gold_in);
  const auto hyp = rouge_sentences(prediction), ref = rouge_sentences(gold);
  if (hyp.empty() || ref.empty()) return 0.0;  // the package raises ValueError; LongBench scores 0
  const auto ref_words = rouge_words(ref), hyp_words = rouge_words(hyp);
  const double m = static_cast<double>(std::set<std::string>(ref_words.begin(), ref_words.end()).size());
  const double n = static_cast<double>(std::set<std::string>(hyp_words.begin(), hyp_words.end()).size());
  std::vector<std::vector<std::string>> hyp_split;
  for (const auto& h : hyp) hyp_split.push_back(split_on(h, " "));
  std::set<std::string> lcs_union;
  int64_t llcs = 0;
  for (const auto& r : ref) {
    const size_t prev = lcs_union.size();
    const auto r_words = split_on(r, " ");
    for (const auto& h_words : hyp_split) {
      const auto lcs = recon_lcs(r_words, h_words);
      lcs_union.insert(lcs.begin(), lcs.end());
    }
    llcs += static_cast<int64_t>(lcs_union.size() - prev);
  }
  const double r_lcs = static_cast<double>(llcs) / m;
  const double p_lcs = static_cast<double>(llcs) / n;
  return 2.0 * ((p_lcs * r_lcs) / (p_lcs + r_lcs + 1e-8));
}

double rouge_1(std::string_view prediction_in, std::string_view gold_in) {
  const std::string prediction = sanitize_utf8(prediction_in), gold = sanitize_utf8(gold_in);
  const auto hyp = rouge_sentences(prediction), ref = rouge_sentences(gold);
  if (hyp.empty() || ref.empty()) return 0.0;
  const auto hw = rouge_words(hyp), rw = rouge_words(ref);
  const std::set<std::string> hs(hw.begin(), hw.end()), rs(rw.begin(), rw.end());
  size_t overlap = 0;
  for (const auto& w : hs) overlap += rs.count(w);
  const double precision = hs.empty() ? 0.0 : static_cast<double>(overlap) / static_cast<double>(hs.size());
  const double recall = rs.empty() ? 0.0 : static_cast<double>(overlap) / static_cast<double>(rs.size());
  return 2.0 * ((precision * recall) / (precision + recall + 1e-8));
}

double classification(std::string_view prediction_in, std::string_view gold_in,
                      const std::vector<std::string>& all_classes) {
  const std::string prediction = sanitize_utf8(prediction_in), gold = sanitize_utf8(gold_in);
  std::vector<std::string> matches;
  for (const auto& c : all_classes)
    if (contains(prediction, c)) matches.push_back(c);
  // Python: `for t in lst: if ...: lst.remove(t)` — removing while iterating skips the next item,
  // and remove() drops the first equal element. Reproduced as is.
  for (size_t i = 0; i < matches.size(); ++i) {
    const std::string term = matches[i];
    if (contains(gold, term) && term != gold) {
      matches.erase(std::find(matches.begin(), matches.end(), term));
    }
  }
  if (std::find(matches.begin(), matches.end(), gold) == matches.end()) return 0.0;
  return 1.0 / static_cast<double>(matches.size());
}

double retrieval(std::string_view prediction_in, std::string_view gold_in) {
  const std::string prediction = sanitize_utf8(prediction_in), gold = sanitize_utf8(gold_in);
  static const Regex re_para("Paragraph (\\d+)");
  const auto ids = findall_text(re_para, gold, 1);
  if (ids.empty()) throw Error("retrieval metric: the gold answer '" + gold + "' has no 'Paragraph N'");
  const auto numbers = findall_text(re_digits(), prediction, 0);
  if (numbers.empty()) return 0.0;
  const auto right = std::count(numbers.begin(), numbers.end(), ids.front());
  return static_cast<double>(right) / static_cast<double>(numbers.size());
}

double count(std::string_view prediction_in, std::string_view gold_in) {
  const std::string prediction = sanitize_utf8(prediction_in), gold = sanitize_utf8(gold_in);
  const auto numbers = findall_text(re_digits(), prediction, 0);
  if (numbers.empty()) return 0.0;
  const auto right = std::count(numbers.begin(), numbers.end(), gold);
  return static_cast<double>(right) / static_cast<double>(numbers.size());
}

int64_t sequence_matcher_matches(std::u32string_view a, std::u32string_view b, bool autojunk) {
  // difflib.SequenceMatcher.__chain_b: b2j, then "popular" elements (more than 1% of a b of at
  // least 200 items) leave b2j — they cannot start a match but may still extend one.
  std::unordered_map<char32_t, std::vector<int>> b2j;
  for (size_t j = 0; j < b.size(); ++j) b2j[b[j]].push_back(static_cast<int>(j));
  const size_t n = b.size();
  if (autojunk && n >= 200) {
    const size_t ntest = n / 100 + 1;
    for (auto it = b2j.begin(); it != b2j.end();) {
      if (it->second.size() > ntest) {
        it = b2j.erase(it);
      } else {
        ++it;
      }
    }
  }
  auto find_longest_match = [&](int alo, int ahi, int blo, int bhi) {
    int besti = alo, bestj = blo, bestsize = 0;
    std::unordered_map<int, int> j2len, newj2len;
    for (int i = alo; i < ahi; ++i) {
      newj2len.clear();
      auto it = b2j.find(a[i]);
      if (it != b2j.end()) {
        for (int j : it->second) {
          if (j < blo) continue;
          if (j >= bhi) break;
          auto prev = j2len.find(j - 1);
          const int k = (prev == j2len.end() ? 0 : prev->second) + 1;
          newj2len[j] = k;
          if (k > bestsize) besti = i - k + 1, bestj = j - k + 1, bestsize = k;
        }
      }
      std::swap(j2len, newj2len);
    }
    // No isjunk function: bjunk is empty, so only the "non-junk" extension loops can move.
    while (besti > alo && bestj > blo && a[besti - 1] == b[bestj - 1]) --besti, --bestj, ++bestsize;
    while (besti + bestsize < ahi && bestj + bestsize < bhi && a[besti + bestsize] == b[bestj + bestsize]) ++bestsize;
    return std::array<int, 3>{besti, bestj, bestsize};
  };
  int64_t matches = 0;
  std::vector<std::array<int, 4>> queue{{0, static_cast<int>(a.size()), 0, static_cast<int>(b.size())}};
  while (!queue.empty()) {
    const auto [alo, ahi, blo, bhi] = queue.back();
    queue.pop_back();
    const auto [i, j, k] = find_longest_match(alo, ahi, blo, bhi);
    if (k == 0) continue;
    matches += k;
    if (alo < i && blo < j) queue.push_back({alo, i, blo, j});
    if (i + k < ahi && j + k < bhi) queue.push_back({i + k, ahi, j + k, bhi});
  }
  return matches;
}

double sequence_matcher_ratio(std::u32string_view a, std::u32string_view b, bool autojunk) {
  const size_t length = a.size() + b.size();
  if (length == 0) return 1.0;
  return 2.0 * static_cast<double>(sequence_matcher_matches(a, b, autojunk)) / static_cast<double>(length);
}

int fuzz_ratio(std::string_view a_in, std::string_view b_in) {
  const std::u32string a = utf8_to_u32(a_in), b = utf8_to_u32(b_in);
  if (a == b) return 100;                // utils.check_for_equivalence (before the empty check)
  if (a.empty() || b.empty()) return 0;  // utils.check_empty_string
  // utils.intr: int(round(100 * ratio)) — Python rounds halves to even, as nearbyint does.
  return static_cast<int>(std::nearbyint(100 * sequence_matcher_ratio(a, b, true)));
}

double code_sim(std::string_view prediction_in, std::string_view gold) {
  const std::string prediction = sanitize_utf8(prediction_in);
  size_t b = 0;
  while (b < prediction.size() && prediction[b] == '\n') ++b;
  std::string chosen;
  for (const auto& line : split_on(std::string_view(prediction).substr(b), "\n")) {
    if (!contains(line, "`") && !contains(line, "#") && !contains(line, "//")) {
      chosen = line;
      break;
    }
  }
  return fuzz_ratio(chosen, gold) / 100.0;
}

LongBenchMetric longbench_metric(const std::string& d) {
  static const std::map<std::string, LongBenchMetric> m = {
      {"narrativeqa", LongBenchMetric::QaF1},     {"qasper", LongBenchMetric::QaF1},
      {"multifieldqa_en", LongBenchMetric::QaF1}, {"hotpotqa", LongBenchMetric::QaF1},
      {"2wikimqa", LongBenchMetric::QaF1},        {"musique", LongBenchMetric::QaF1},
      {"triviaqa", LongBenchMetric::QaF1},        {"gov_report", LongBenchMetric::RougeL},
      {"qmsum", LongBenchMetric::RougeL},         {"multi_news", LongBenchMetric::RougeL},
      {"samsum", LongBenchMetric::RougeL},        {"trec", LongBenchMetric::Classification},
      {"lsht", LongBenchMetric::Classification},  {"passage_retrieval_en", LongBenchMetric::Retrieval},
      {"passage_count", LongBenchMetric::Count},  {"lcc", LongBenchMetric::CodeSim},
      {"repobench-p", LongBenchMetric::CodeSim},
  };
  auto it = m.find(d);
  if (it == m.end()) {
    std::string known;
    for (const auto& [k, v] : m) known += (known.empty() ? "" : ", ") + k;
    throw Error("LongBench dataset '" + d + "' is not supported (Chinese QA/summaries need jieba); known: " + known);
  }
  return it->second;
}

const char* longbench_metric_name(LongBenchMetric m) {
  switch (m) {
    case LongBenchMetric::QaF1:
      return "qa_f1";
    case LongBenchMetric::RougeL:
      return "rouge_l";
    case LongBenchMetric::Classification:
      return "classification";
    case LongBenchMetric::Retrieval:
      return "retrieval";
    case LongBenchMetric::Count:
      return "count";
    case LongBenchMetric::CodeSim:
      return "code_sim";
  }
  return "?";
}

double longbench_score(const std::string& dataset, std::string_view prediction_in,
                       const std::vector<std::string>& golds, const std::vector<std::string>& all_classes) {
  const LongBenchMetric metric = longbench_metric(dataset);
  std::string prediction = sanitize_utf8(prediction_in);
  if (dataset == "trec" || dataset == "triviaqa" || dataset == "samsum" || dataset == "lsht") {
    prediction = first_line(prediction);
  }
  double score = 0.0;
  for (const auto& gold : golds) {
    double s = 0.0;
    switch (metric) {
      case LongBenchMetric::QaF1:
        s = qa_f1(prediction, gold);
        break;
      case LongBenchMetric::RougeL:
        s = rouge_l(prediction, gold);
        break;
      case LongBenchMetric::Classification:
        s = classification(prediction, gold, all_classes);
        break;
      case LongBenchMetric::Retrieval:
        s = retrieval(prediction, gold);
        break;
      case LongBenchMetric::Count:
        s = count(prediction, gold);
        break;
      case LongBenchMetric::CodeSim:
        s = code_sim(prediction, gold);
        break;
    }
    score = std::max(score, s);
  }
  return score;
}

}  // namespace cvq::metrics
