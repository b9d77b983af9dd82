// SQLSTATE codes the proxy reports itself. Values from PostgreSQL's errcodes.txt.
#pragma once

namespace pgregion::protocol::sqlstate {

inline constexpr char kSuccessfulCompletion[] = "00000";
inline constexpr char kConnectionException[] = "08000";
inline constexpr char kConnectionDoesNotExist[] = "08003";
inline constexpr char kConnectionFailure[] = "08006";
inline constexpr char kSqlclientUnableToEstablishSqlconnection[] = "08001";
inline constexpr char kSqlserverRejectedEstablishmentOfSqlconnection[] = "08004";
inline constexpr char kProtocolViolation[] = "08P01";
inline constexpr char kFeatureNotSupported[] = "0A000";
inline constexpr char kInvalidParameterValue[] = "22023";
inline constexpr char kInvalidAuthorizationSpecification[] = "28000";
inline constexpr char kInvalidPassword[] = "28P01";
inline constexpr char kReadOnlySqlTransaction[] = "25006";
inline constexpr char kSerializationFailure[] = "40001";
inline constexpr char kSyntaxError[] = "42601";
inline constexpr char kUndefinedObject[] = "42704";
inline constexpr char kInvalidCatalogName[] = "3D000";
inline constexpr char kTooManyConnections[] = "53300";
inline constexpr char kProgramLimitExceeded[] = "54000";
inline constexpr char kQueryCanceled[] = "57014";
inline constexpr char kAdminShutdown[] = "57P01";
inline constexpr char kCrashShutdown[] = "57P02";
inline constexpr char kCannotConnectNow[] = "57P03";
inline constexpr char kInternalError[] = "XX000";

}  // namespace pgregion::protocol::sqlstate
