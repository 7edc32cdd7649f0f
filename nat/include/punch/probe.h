// `punch probe`'s work, as a library call: discovery (design.md §5 step 1) and RFC 5780
// classification on the caller's event loop.
//
// Discovery sends a Binding request to every configured server at once from the mapping socket
// (the socket a call leg would use); the nearest server is the first to give a valid answer,
// and its XOR-MAPPED-ADDRESS is our reflexive address. Classification starts as soon as the
// first valid answer carrying OTHER-ADDRESS arrives (the nearest server that can classify),
// with that answer as mapping test I:
//   mapping socket    tests II and III at once (the alternate IP; with the primary port and
//                     with the alternate port), unless test I showed no NAT
//   filtering socket  a fresh one: tests I, II and III at once, all to the primary address
//   hairpinning       the filtering socket sends a Binding request to test I's mapped address;
//                     the mapping socket watches for it (RFC 5780 §4.5)
// Every transaction is bounded by the retransmission policy, so the probe ends within the
// policy's bound after the last discovery answer.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "punch/event_loop.h"
#include "punch/nat_classify.h"
#include "punch/stun_transaction.h"

namespace punch {

struct ProbeServer {
    std::string name;  ///< as the user wrote it ("stun.example.org:3478")
    stun::Address address;
};

struct ProbeConfig {
    std::vector<ProbeServer> servers;
    RetransmissionPolicy policy;
    /// The call leg's socket, already open: discovery and the mapping tests go from it, so that
    /// the reflexive address found is the one the call's peer will see (design.md §5: one
    /// socket per leg). Null: the probe opens its own. It is watched while the probe runs and
    /// unwatched when it ends.
    UdpSocket* mapping_socket = nullptr;
};

struct ServerReport {
    ProbeServer server;
    BindingResult result;
};

struct ProbeReport {
    std::vector<ServerReport> servers;  ///< in the order configured
    std::optional<std::size_t> nearest;     ///< index of the fastest valid answer
    std::optional<std::size_t> classifier;  ///< index of the server the RFC 5780 tests used
    stun::Address reflexive;                ///< the nearest's XOR-MAPPED-ADDRESS
    stun::Address local;                    ///< the mapping socket's address
    ProbeResults tests;
    Classification classification;
    Time elapsed{0};
    /// Response rejections on both sockets (malformed, wrong transaction, bad FINGERPRINT ...).
    std::array<std::uint64_t, static_cast<std::size_t>(ResponseRejection::count)> rejected{};
};

/// Runs the probe to its end on `loop` (which may hold other work). Returns "" and fills
/// `report`, or says why it could not start: no servers, servers of both families (one socket
/// has one family), a socket that could not be opened.
[[nodiscard]] std::string run_probe(EventLoop& loop, const ProbeConfig& config,
                                    ProbeReport& report);

}  // namespace punch
