#include "decoder/relation_cache.h"

#include <utility>

namespace outboxd::decoder {

const pgoutput::Relation& RelationCache::Update(pgoutput::Relation relation) {
  const pgoutput::Oid oid = relation.oid;
  auto& slot = relations_[oid];
  slot = std::move(relation);
  return slot;
}

const pgoutput::Relation* RelationCache::Find(pgoutput::Oid oid) const {
  auto it = relations_.find(oid);
  return it == relations_.end() ? nullptr : &it->second;
}

}  // namespace outboxd::decoder
