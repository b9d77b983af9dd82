#include "routing/json_tree.h"

#include <charconv>
#include <cstring>

namespace pgregion::routing {
namespace {

inline bool IsWs(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

void AppendUtf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Four hex digits at s[i..i+4), or -1.
int32_t Hex4(std::string_view s, size_t i) {
  if (i + 4 > s.size()) return -1;
  int32_t v = 0;
  for (size_t k = i; k < i + 4; ++k) {
    char c = s[k];
    v <<= 4;
    if (c >= '0' && c <= '9') {
      v |= c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v |= c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v |= c - 'A' + 10;
    } else {
      return -1;
    }
  }
  return v;
}

}  // namespace

JsonTree::Index JsonTree::Add(Type type, std::string_view key, std::string_view text) {
  const Index idx = static_cast<Index>(nodes_.size());
  nodes_.push_back(Node{type, kNone, kNone, key, text});
  if (!stack_.empty()) {
    Frame& parent = stack_.back();
    if (parent.last_child == kNone) {
      nodes_[parent.node].first_child = idx;
    } else {
      nodes_[parent.last_child].next_sibling = idx;
    }
    parent.last_child = idx;
  }
  return idx;
}

void JsonTree::ReleaseIfLarger(size_t bytes) {
  if (capacity_bytes() <= bytes) return;
  std::vector<Node>().swap(nodes_);
  std::vector<Frame>().swap(stack_);
}

bool JsonTree::Parse(std::string_view in) {
  nodes_.clear();
  stack_.clear();
  const size_t n = in.size();
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < n && IsWs(in[i])) ++i;
  };
  // Reads a string starting at the opening quote; the body view excludes the
  // quotes. Escapes are skipped, not decoded.
  auto read_string = [&](std::string_view* body) {
    const size_t start = i + 1;
    size_t j = start;
    while (true) {
      const void* quote = j < n ? std::memchr(in.data() + j, '"', n - j) : nullptr;
      if (quote == nullptr) return false;
      j = static_cast<size_t>(static_cast<const char*>(quote) - in.data());
      // Escaped when preceded by an odd number of backslashes.
      size_t backslashes = 0;
      while (j - backslashes > start && in[j - backslashes - 1] == '\\') ++backslashes;
      if (backslashes % 2 == 0) break;
      ++j;
    }
    *body = in.substr(start, j - start);
    i = j + 1;
    return true;
  };
  // After '{' or ',' inside an object: "key" ':'.
  auto read_key = [&](std::string_view* key) {
    skip_ws();
    if (i >= n || in[i] != '"' || !read_string(key)) return false;
    skip_ws();
    if (i >= n || in[i] != ':') return false;
    ++i;
    return true;
  };

  std::string_view key;
  while (true) {
    // A value is expected.
    skip_ws();
    if (i >= n) return false;
    const char c = in[i];
    if (c == '{' || c == '[') {
      const bool object = c == '{';
      Index idx = Add(object ? Type::kObject : Type::kArray, key, {});
      stack_.push_back(Frame{idx, kNone});
      ++i;
      skip_ws();
      if (i < n && in[i] == (object ? '}' : ']')) {
        stack_.pop_back();
        ++i;
      } else {
        key = {};
        if (object && !read_key(&key)) return false;
        continue;
      }
    } else if (c == '"') {
      std::string_view body;
      if (!read_string(&body)) return false;
      Add(Type::kString, key, body);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t start = i;
      while (i < n && (in[i] == '-' || in[i] == '+' || in[i] == '.' || in[i] == 'e' ||
                       in[i] == 'E' || (in[i] >= '0' && in[i] <= '9'))) {
        ++i;
      }
      Add(Type::kNumber, key, in.substr(start, i - start));
    } else if (in.substr(i, 4) == "true" || in.substr(i, 4) == "null") {
      Add(c == 't' ? Type::kBool : Type::kNull, key, in.substr(i, 4));
      i += 4;
    } else if (in.substr(i, 5) == "false") {
      Add(Type::kBool, key, in.substr(i, 5));
      i += 5;
    } else {
      return false;
    }
    // After a value: close containers or move to the next element.
    while (true) {
      skip_ws();
      if (stack_.empty()) return true;
      if (i >= n) return false;
      const bool object = nodes_[stack_.back().node].type == Type::kObject;
      if (in[i] == ',') {
        ++i;
        key = {};
        if (object && !read_key(&key)) return false;
        break;
      }
      if (in[i] != (object ? '}' : ']')) return false;
      stack_.pop_back();
      ++i;
    }
  }
}

JsonTree::Index JsonTree::Member(Index obj, std::string_view key) const {
  if (obj == kNone || nodes_[obj].type != Type::kObject) return kNone;
  for (Index c = nodes_[obj].first_child; c != kNone; c = nodes_[c].next_sibling) {
    if (nodes_[c].key == key) return c;
  }
  return kNone;
}

std::string_view JsonTree::RawString(Index obj, std::string_view key) const {
  Index m = Member(obj, key);
  if (m == kNone || nodes_[m].type != Type::kString) return {};
  return nodes_[m].text;
}

bool JsonTree::Bool(Index obj, std::string_view key) const {
  Index m = Member(obj, key);
  return m != kNone && nodes_[m].type == Type::kBool && nodes_[m].text == "true";
}

std::optional<int64_t> JsonTree::Int(Index i) const {
  if (i == kNone || nodes_[i].type != Type::kNumber) return std::nullopt;
  std::string_view t = nodes_[i].text;
  int64_t v = 0;
  auto res = std::from_chars(t.data(), t.data() + t.size(), v);
  if (res.ec != std::errc() || res.ptr != t.data() + t.size()) return std::nullopt;
  return v;
}

std::string JsonTree::String(Index i) const {
  std::string out;
  if (i == kNone || nodes_[i].type != Type::kString) return out;
  std::string_view t = nodes_[i].text;
  out.reserve(t.size());
  for (size_t k = 0; k < t.size(); ++k) {
    if (t[k] != '\\' || k + 1 >= t.size()) {
      out.push_back(t[k]);
      continue;
    }
    char e = t[++k];
    switch (e) {
      case 'n':
        out.push_back('\n');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'u': {
        int32_t cp = Hex4(t, k + 1);
        if (cp < 0) {
          out.push_back('u');
          break;
        }
        k += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && k + 2 < t.size() && t[k + 1] == '\\' &&
            t[k + 2] == 'u') {
          int32_t lo = Hex4(t, k + 3);
          if (lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            k += 6;
          }
        }
        AppendUtf8(&out, static_cast<uint32_t>(cp));
        break;
      }
      default:  // '"', '\\', '/'
        out.push_back(e);
        break;
    }
  }
  return out;
}

}  // namespace pgregion::routing
