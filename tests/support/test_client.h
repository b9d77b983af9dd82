// A raw PostgreSQL frontend for unit tests (no libpq): a libuv TCP connection
// on the test's loop that sends bytes built with protocol/message_builder.h
// and decodes every backend message it receives, for assertions. Loop thread
// only; the socket is a heap object freed in its close callback.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgregion::testing {

struct BackendMessage {
  char type = 0;
  std::string body;
};

// Whole backend messages in `bytes` (what a ServerClient was forwarded).
std::vector<BackendMessage> DecodeMessages(std::string_view bytes);
// Their types, in order ("TDCZ").
std::string MessageTypes(std::string_view bytes);

class TestClient {
 public:
  TestClient(uv_loop_t* loop, uint16_t port);
  ~TestClient();
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  // Waits for the TCP connect (bounded); false when it failed.
  bool WaitConnected(uint64_t timeout_ms = 2000);
  void Send(std::string_view bytes);
  void SendStartup(std::string_view user, std::string_view database,
                   const std::vector<std::pair<std::string, std::string>>& extra = {});
  void SendQuery(std::string_view text);
  // Terminate, then close.
  void Terminate();
  // Closes the socket without a Terminate (a client that vanished).
  void Close();

  // Runs the loop until `n` ReadyForQuery messages arrived in all, or the
  // connection closed; true when they did.
  bool WaitReady(size_t n, uint64_t timeout_ms = 2000);
  // Runs the loop until the peer closed the connection.
  bool WaitClosed(uint64_t timeout_ms = 2000);

  const std::vector<BackendMessage>& messages() const { return messages_; }
  bool closed() const { return closed_; }
  size_t ready_count() const;
  // Types of the messages received, in order ("RSSKZ...").
  std::string Types() const;
  // The transaction status of each ReadyForQuery.
  std::string ReadyStatuses() const;
  // First column of each DataRow.
  std::vector<std::string> FirstColumns() const;
  std::vector<std::string> CommandTags() const;
  // SQLSTATE of each ErrorResponse.
  std::vector<std::string> ErrorCodes() const;
  // Value of the last ParameterStatus named `name` ("" if none).
  std::string Parameter(std::string_view name) const;
  void ClearMessages() { messages_.clear(); }

 private:
  struct Socket;
  void OnData(std::string_view data);

  uv_loop_t* loop_;
  Socket* socket_ = nullptr;
  bool connected_ = false;
  bool connect_failed_ = false;
  bool closed_ = false;
  std::string in_;
  std::vector<BackendMessage> messages_;
};

}  // namespace pgregion::testing
