// A minimal, tolerant JSON reader for libpg_query's parse-tree output: the
// document becomes a flat vector of nodes (first child / next sibling links),
// built without recursion so deep parse trees cannot exhaust the stack.
// Strings and numbers stay views into the input (the caller keeps the JSON
// text alive as long as the tree); escapes are decoded only on request.
// Malformed input makes Parse() return false; it never reads out of bounds.
// Not thread-safe; reuse one instance to keep its node buffer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgregion::routing {

class JsonTree {
 public:
  using Index = uint32_t;
  static constexpr Index kNone = UINT32_MAX;

  enum class Type : uint8_t { kNull, kBool, kNumber, kString, kObject, kArray };

  struct Node {
    Type type = Type::kNull;
    Index first_child = kNone;
    Index next_sibling = kNone;
    std::string_view key;   // member name when the parent is an object
    std::string_view text;  // raw string body (escapes intact), number or literal
  };

  // Replaces the tree with the parse of `json`. The root is node 0.
  [[nodiscard]] bool Parse(std::string_view json);

  // Frees the node buffers if they hold more than `bytes` (after a huge
  // document); the tree is then empty.
  void ReleaseIfLarger(size_t bytes);
  size_t capacity_bytes() const {
    return nodes_.capacity() * sizeof(Node) + stack_.capacity() * sizeof(Frame);
  }

  bool empty() const { return nodes_.empty(); }
  const Node& node(Index i) const { return nodes_[i]; }
  size_t size() const { return nodes_.size(); }

  // The member `key` of object `obj`, or kNone (also when obj is kNone or not
  // an object).
  Index Member(Index obj, std::string_view key) const;
  // Children of an array or object, in order.
  Index FirstChild(Index i) const { return i == kNone ? kNone : nodes_[i].first_child; }
  Index Next(Index i) const { return nodes_[i].next_sibling; }

  // The decoded value of a string node (empty for other types).
  std::string String(Index i) const;
  // The raw text of a string member without decoding (fine for enum names and
  // identifiers known to need no escapes), or empty.
  std::string_view RawString(Index obj, std::string_view key) const;
  // Integer value of a number node; nullopt for other types or overflow.
  std::optional<int64_t> Int(Index i) const;
  // true only for a `true` literal (libpg_query omits false booleans).
  bool Bool(Index obj, std::string_view key) const;

 private:
  struct Frame {
    Index node;
    Index last_child;
  };
  Index Add(Type type, std::string_view key, std::string_view text);

  std::vector<Node> nodes_;
  std::vector<Frame> stack_;
};

}  // namespace pgregion::routing
