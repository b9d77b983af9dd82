// Sends a PostgreSQL CancelRequest to one backend and forgets about it.
//
// A CancelRequest goes on a new connection to the backend's node (the
// protocol has no other way). Nobody waits for it: the caller has already
// given up on the query, or passes the client's own cancel on. The sender
// frees itself once the request is written, the connect fails, or the connect
// has not finished after `connect_timeout_ms`: a blackholed node (the very
// case a cancel is sent for) would otherwise keep each sender until the
// kernel gives up on the connect, about two minutes. Loop thread only.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>

namespace pgregion::proxy {

void SendCancelRequest(uv_loop_t* loop, const sockaddr* node, uint32_t backend_pid,
                       uint32_t backend_secret, uint64_t connect_timeout_ms);

}  // namespace pgregion::proxy
