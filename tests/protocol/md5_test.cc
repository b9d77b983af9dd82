#include "protocol/md5.h"

#include <doctest/doctest.h>

#include <string>

namespace pgregion::protocol {
namespace {

using namespace std::string_literals;

}  // namespace

TEST_CASE("Md5Hex: RFC 1321 vectors") {
  CHECK(Md5Hex("") == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(Md5Hex("abc") == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(Md5Hex("message digest") == "f96b697d7cb7938d525a2f31aaf161d0");
}

TEST_CASE("Md5StoredPassword") {
  CHECK(Md5StoredPassword("postgres", "postgres") == "md53175bce1d3201d16594cebf9d7eb3f9d");
  // From a real PostgreSQL 15: SET password_encryption='md5';
  // CREATE ROLE bob PASSWORD 'secret'; SELECT rolpassword FROM pg_authid.
  CHECK(Md5StoredPassword("bob", "secret") == "md521f3163f8f86fa10bdefbfbd502a8f06");
  // Order is password then user.
  CHECK(Md5StoredPassword("secret", "bob") != Md5StoredPassword("bob", "secret"));
}

TEST_CASE("Md5Response") {
  // python3 -c "import hashlib;
  //   print(hashlib.md5(b'3175bce1d3201d16594cebf9d7eb3f9d' + bytes([1,2,3,4])).hexdigest())"
  CHECK(Md5Response("md53175bce1d3201d16594cebf9d7eb3f9d", "\x01\x02\x03\x04") ==
        "md568be9ed08db75f318087ab337aaea044");
  // Salt bytes are binary, NUL included:
  //   hashlib.md5(b'21f3163f8f86fa10bdefbfbd502a8f06' + b'\xff\x00\x7f\x80').hexdigest()
  CHECK(Md5Response(Md5StoredPassword("bob", "secret"), "\xff\x00\x7f\x80"s) ==
        "md591cf746e6cf8b903e77f7d618d11e574");
  CHECK(Md5Response("md53175bce1d3201d16594cebf9d7eb3f9d", "\x01\x02\x03\x05") !=
        "md568be9ed08db75f318087ab337aaea044");
  // Not a stored md5 form: fail closed.
  CHECK(Md5Response("postgres", "\x01\x02\x03\x04") == "");
  CHECK(Md5Response("3175bce1d3201d16594cebf9d7eb3f9d", "\x01\x02\x03\x04") == "");
  CHECK(Md5Response("", "") == "");
}

TEST_CASE("LooksLikeMd5Stored") {
  CHECK(LooksLikeMd5Stored("md53175bce1d3201d16594cebf9d7eb3f9d"));
  CHECK(LooksLikeMd5Stored("md5" + std::string(32, '0')));
  CHECK_FALSE(LooksLikeMd5Stored(""));
  CHECK_FALSE(LooksLikeMd5Stored("md5"));
  CHECK_FALSE(LooksLikeMd5Stored("md53175BCE1D3201D16594CEBF9D7EB3F9D"));
  CHECK_FALSE(LooksLikeMd5Stored("MD53175bce1d3201d16594cebf9d7eb3f9d"));
  CHECK_FALSE(LooksLikeMd5Stored("md53175bce1d3201d16594cebf9d7eb3f9"));
  CHECK_FALSE(LooksLikeMd5Stored("md53175bce1d3201d16594cebf9d7eb3f9d0"));
  CHECK_FALSE(LooksLikeMd5Stored("md53175bce1d3201d16594cebf9d7eb3f9g"));
  CHECK_FALSE(LooksLikeMd5Stored("md53175bce1d3201d16594cebf9d7eb3f9\0"s));
  CHECK_FALSE(LooksLikeMd5Stored("xyz3175bce1d3201d16594cebf9d7eb3f9d"));
  CHECK_FALSE(LooksLikeMd5Stored("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$x:y"));
}

}  // namespace pgregion::protocol
