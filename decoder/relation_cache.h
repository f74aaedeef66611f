// RelationCache: the table descriptions pgoutput sends before first use.
//
//   cache.Update(relation);                  // on every Relation message
//   const pgoutput::Relation* r = cache.Find(insert.relation_oid);
//
// pgoutput sends a Relation message before the first change to a table in a
// session and again after ALTER TABLE, so the newest one always wins.
//
// Thread: owned by the stream thread; not thread-safe.
#ifndef OUTBOXD_DECODER_RELATION_CACHE_H_
#define OUTBOXD_DECODER_RELATION_CACHE_H_

#include "absl/container/flat_hash_map.h"
#include "decoder/pgoutput.h"

namespace outboxd::decoder {

class RelationCache {
 public:
  // Stores the relation; returns the stored copy.
  const pgoutput::Relation& Update(pgoutput::Relation relation);
  // nullptr when no Relation message for oid arrived on this connection.
  const pgoutput::Relation* Find(pgoutput::Oid oid) const;
  void Clear() { relations_.clear(); }

 private:
  absl::flat_hash_map<pgoutput::Oid, pgoutput::Relation> relations_;
};

}  // namespace outboxd::decoder

#endif  // OUTBOXD_DECODER_RELATION_CACHE_H_
