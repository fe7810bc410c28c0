#pragma once
// The merge loop both tokenizer families share (llama.cpp's llm_tokenizer_bpe / _spm): symbols form a
// linked list over the text; the best queued bigram is popped, skipped when stale (a side was merged
// away or has grown since it was queued), merged right-into-left, and the two new neighbour pairs are
// queued. The families differ only in how a bigram is scored (add_bigram) and what a merge records.
#include <vector>

namespace cvq {

// Symbol: {prev, next, length, ...}; Queue: a priority queue of {left, right, size, ...};
// add_bigram(left, right) queues the pair if it may merge (either index may be -1);
// on_merge(Symbol& left, const Bigram&) runs after left has absorbed right's length.
template <class Symbol, class Queue, class AddBigram, class OnMerge>
void merge_symbols(std::vector<Symbol>& symbols, Queue& queue, AddBigram&& add_bigram, OnMerge&& on_merge) {
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) add_bigram(i - 1, i);
  while (!queue.empty()) {
    const auto b = queue.top();
    queue.pop();
    Symbol& l = symbols[b.left];
    Symbol& r = symbols[b.right];
    if (l.length == 0 || r.length == 0 || l.length + r.length != b.size) continue;
    l.length += r.length;
    on_merge(l, b);
    r.length = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = b.left;
    add_bigram(l.prev, b.left);
    add_bigram(b.left, l.next);
  }
}

}  // namespace cvq
