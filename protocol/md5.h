// md5 password authentication as PostgreSQL does it. Pure.
#pragma once

#include <string>
#include <string_view>

namespace pgregion::protocol {

// Hex MD5 digest.
std::string Md5Hex(std::string_view data);
// The stored form: "md5" + md5hex(password + user).
std::string Md5StoredPassword(std::string_view user, std::string_view password);
bool LooksLikeMd5Stored(std::string_view text);
// What a client sends for AuthenticationMD5Password: "md5" + md5hex(md5hex(password+user) + salt).
// `stored` is the "md5..." stored form; anything else yields "" (never a valid
// response, so the exchange fails closed).
std::string Md5Response(std::string_view stored, std::string_view salt4);

}  // namespace pgregion::protocol
