// Helpers that build wire-format byte fixtures for unit tests.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgregion::testing {

// Big-endian int32 as 4 bytes.
inline std::string Int32(uint32_t v) {
  std::string s(4, '\0');
  s[0] = static_cast<char>(v >> 24);
  s[1] = static_cast<char>(v >> 16);
  s[2] = static_cast<char>(v >> 8);
  s[3] = static_cast<char>(v);
  return s;
}

// Big-endian int16 as 2 bytes.
inline std::string Int16(uint16_t v) {
  std::string s(2, '\0');
  s[0] = static_cast<char>(v >> 8);
  s[1] = static_cast<char>(v);
  return s;
}

// A C string as sent on the wire: the text and its terminating NUL.
inline std::string CStr(std::string_view v) {
  std::string s(v);
  s.push_back('\0');
  return s;
}

// A whole message: type byte (omitted when `type` is 0, for startup packets),
// self-inclusive int32 length, body.
inline std::string MakeMsg(char type, std::string_view body) {
  std::string s;
  if (type != 0) s.push_back(type);
  s += Int32(static_cast<uint32_t>(body.size() + 4));
  s += body;
  return s;
}

}  // namespace pgregion::testing
