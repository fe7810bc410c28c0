#pragma once
// SHA-256 of files, computed once per file version: the digest is kept in a small JSON cache keyed by
// the file's absolute path and checked against its size, modification time (ns), inode and device,
// so an unchanged file is not read again and a rewritten one (even to the same size) is re-hashed.
// Cache file: $COMMVQ_HASH_CACHE, else $COMMVQ_HOME/file-hashes.json, else
// ~/.cache/commvq-bench/file-hashes.json. Written atomically; concurrent writers may drop each
// other's new entries (they are recomputed), never corrupt the file. A cache that cannot be read or
// written only costs time.
#include <string>

namespace cvq {

std::string sha256_file_cached(const std::string& path);
std::string file_hash_cache_path();

}  // namespace cvq
