// stun_flood: a STUN Binding flood generator that validates every response.
//
//   stun_flood --server IP:PORT [--count N] [--duration SECONDS] [--sources K] [--window W]
//              [--bind IP] [--fingerprint | --no-fingerprint] [--timeout SECONDS] [--json]
//
// The load generator for comparing our engine with coturn (bench/stun_flood_coturn.sh) and the
// client of the interop test against it (tests/interop/flood_coturn_test.sh). K connected UDP
// sockets, K distinct source ports, each with at most W requests outstanding. Requests go out
// with sendmmsg() in batches and responses come back with recvmmsg(); the only per-request
// work between the two syscalls is building 28 bytes and one CRC-32.
//
// Nothing is retransmitted: a request unanswered after --timeout (default 1 s) is counted as a
// timeout and its window slot freed, so a slow or lossy server slows the flood down instead of
// stalling it or being overrun. Sending stops after --count requests or --duration seconds,
// whichever comes first; then the requests still outstanding get at most --timeout to be
// answered. The run therefore never lasts longer than duration + timeout.
//
// Every response is validated (RFC 8489): it parses, it is a Binding success response (§7.3.1
// of RFC 8489 via §18.2), it carries a FINGERPRINT that verifies (§14.7), and its
// XOR-MAPPED-ADDRESS (§14.2) is the address the server saw: the local address of the socket
// that sent the request, as getsockname() gives it after connect() (a connected socket has a
// concrete local address even when bound to a wildcard). Every request ends in exactly one of:
// answered ok, answered badly (by reason), timed out.
//
// Exit status: 0 when every request sent was answered correctly and no bad datagram arrived,
// 1 otherwise, 2 on a usage error.
#include <CLI/CLI.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "stun/address.h"
#include "stun/attributes.h"
#include "stun/bytes.h"
#include "stun/constants.h"
#include "stun/crypto.h"
#include "stun/errors.h"
#include "stun/integrity.h"
#include "stun/message.h"
#include "stun/writer.h"

namespace {

using Clock = std::chrono::steady_clock;

// Datagrams per sendmmsg()/recvmmsg() call. 64 amortises the syscall to a few percent of the
// per-datagram kernel cost while keeping one batch's buffers (64 × 2 KiB) in L2.
constexpr std::size_t batch_size = 64;
// Larger than any response a Binding request draws (coturn's is 88 bytes with SOFTWARE,
// RESPONSE-ORIGIN and OTHER-ADDRESS); a datagram that fills it is reported as oversized.
constexpr std::size_t receive_buffer_size = 2048;
// 20-byte header + FINGERPRINT (8).
constexpr std::size_t request_buffer_size = 32;
// The sources' index is stored in 16 bits; the file-descriptor limit bites well before.
constexpr std::size_t max_sources = 4096;
// One byte of state and two of source per request are kept for the whole run.
constexpr std::uint64_t max_count = 100'000'000;

struct Options {
    std::string server;
    std::uint64_t count = 100'000;
    double duration_s = 10.0;
    std::size_t sources = 16;
    std::size_t window = 64;
    std::string bind_ip;
    bool fingerprint = true;
    double timeout_s = 1.0;
    bool json = false;
};

// ---------------------------------------------------------------------------------------------
// Why a datagram or a request went wrong: one table of name + help text (house style rule 6).
// Parse errors are counted apart, by stun::ParseError, as "parse_<name>".

enum class Reason : std::uint8_t {
    oversized,
    error_response,
    wrong_type,
    missing_fingerprint,
    bad_fingerprint,
    missing_xor_mapped_address,
    bad_xor_mapped_address,
    wrong_mapped_address,
    wrong_source,
    unknown_transaction,
    duplicate_response,
    late_response,
    connection_refused,
    count_,
};

struct ReasonInfo {
    std::string_view name;
    std::string_view help;
};

constexpr std::array<ReasonInfo, static_cast<std::size_t>(Reason::count_)> reasons{{
    {"oversized", "the datagram filled the 2048-byte receive buffer (truncated)"},
    {"error_response", "a Binding error response (RFC 8489 §6.3.4)"},
    {"wrong_type", "a STUN message other than a Binding success or error response"},
    {"missing_fingerprint", "no FINGERPRINT although the request carried one"},
    {"bad_fingerprint", "FINGERPRINT does not match the CRC-32 of the message (RFC 8489 §14.7)"},
    {"missing_xor_mapped_address", "no XOR-MAPPED-ADDRESS (RFC 8489 §7.3.1)"},
    {"bad_xor_mapped_address", "XOR-MAPPED-ADDRESS does not decode (length or family)"},
    {"wrong_mapped_address", "XOR-MAPPED-ADDRESS is not the requesting socket's own address"},
    {"wrong_source", "the response arrived on another socket than its request left from"},
    {"unknown_transaction", "the transaction ID matches no request this run sent"},
    {"duplicate_response", "a second response to a request already answered"},
    {"late_response", "a response after its request had timed out (counted there too)"},
    {"connection_refused", "ECONNREFUSED on a socket: ICMP port unreachable from the server"},
}};

constexpr std::size_t parse_error_slots = 32;  // > every stun::ParseError value

// ---------------------------------------------------------------------------------------------
// Transaction IDs: unique per request without a syscall per request.
//
// One random_bytes() call at start-up draws a 32-bit prefix and two 64-bit keys. Request n
// gets prefix || mix(n + key_in) ^ key_out, where mix is the SplitMix64 finaliser: xor-shifts
// and multiplications by odd constants, each invertible modulo 2^64, so mix is a bijection and
// distinct n give distinct IDs. The IDs look random on the wire, and a response's ID inverts
// back to n directly: no hash table to match responses against requests.

constexpr std::uint64_t mix_multiplier_1 = 0xbf58476d1ce4e5b9;
constexpr std::uint64_t mix_multiplier_2 = 0x94d049bb133111eb;

// The inverse of an odd number modulo 2^64 by Newton's iteration (each step doubles the
// number of correct low bits; 3 bits are right to start with).
constexpr std::uint64_t inverse_mod_2_64(std::uint64_t a) {
    std::uint64_t x = a;
    for (int i = 0; i < 5; ++i) x *= 2 - a * x;
    return x;
}
constexpr std::uint64_t mix_inverse_1 = inverse_mod_2_64(mix_multiplier_1);
constexpr std::uint64_t mix_inverse_2 = inverse_mod_2_64(mix_multiplier_2);
static_assert(mix_multiplier_1 * mix_inverse_1 == 1 && mix_multiplier_2 * mix_inverse_2 == 1);

constexpr std::uint64_t mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * mix_multiplier_1;
    z = (z ^ (z >> 27)) * mix_multiplier_2;
    return z ^ (z >> 31);
}

// Undoes z ^= z >> s for s >= 22 (two steps reach all 64 bits for s >= 22).
constexpr std::uint64_t unxorshift(std::uint64_t z, int s) { return z ^ (z >> s) ^ (z >> 2 * s); }

constexpr std::uint64_t unmix(std::uint64_t z) {
    z = unxorshift(z, 31) * mix_inverse_2;
    z = unxorshift(z, 27) * mix_inverse_1;
    return unxorshift(z, 30);
}
static_assert(unmix(mix(0)) == 0 && unmix(mix(12345)) == 12345 && unmix(mix(~0ull)) == ~0ull);

class TransactionIds {
public:
    [[nodiscard]] bool init() noexcept {
        std::array<std::byte, 20> pool{};
        if (!stun::random_bytes(pool)) return false;
        std::memcpy(prefix_.data(), pool.data(), prefix_.size());
        key_in_ = stun::load_be64(pool.data() + 4);
        key_out_ = stun::load_be64(pool.data() + 12);
        return true;
    }

    void make(std::uint64_t n, std::span<std::byte, stun::transaction_id_size> out) const noexcept {
        std::memcpy(out.data(), prefix_.data(), prefix_.size());
        stun::store_be64(out.data() + 4, mix(n + key_in_) ^ key_out_);
    }

    /// The request number an ID was made from; false when the prefix is not this run's.
    [[nodiscard]] bool decode(std::span<const std::byte, stun::transaction_id_size> id,
                              std::uint64_t& n) const noexcept {
        if (std::memcmp(id.data(), prefix_.data(), prefix_.size()) != 0) return false;
        n = unmix(stun::load_be64(id.data() + 4) ^ key_out_) - key_in_;
        return true;
    }

private:
    std::array<std::byte, 4> prefix_{};
    std::uint64_t key_in_ = 0;
    std::uint64_t key_out_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Addresses.

struct Endpoint {
    sockaddr_storage address{};
    socklen_t length = 0;
};

// "192.0.2.1", "2001:db8::1" or "[2001:db8::1]" with `port` into `out`.
bool parse_ip(std::string_view text, std::uint16_t port, Endpoint& out) {
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
        text = text.substr(1, text.size() - 2);
    }
    const std::string ip(text);
    out = {};
    auto* v4 = reinterpret_cast<sockaddr_in*>(&out.address);
    if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        out.length = sizeof(sockaddr_in);
        return true;
    }
    out = {};
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.address);
    if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        out.length = sizeof(sockaddr_in6);
        return true;
    }
    return false;
}

// "IP:PORT" or "[IPv6]:PORT".
bool parse_server(std::string_view text, Endpoint& out) {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon + 1 == text.size()) return false;
    const std::string_view host = text.substr(0, colon);
    // A bare IPv6 address has colons of its own: it must be bracketed to carry a port.
    if (host.find(':') != std::string_view::npos && host.front() != '[') return false;
    unsigned port = 0;
    for (const char c : text.substr(colon + 1)) {
        if (c < '0' || c > '9') return false;
        port = port * 10 + static_cast<unsigned>(c - '0');
        if (port > 65535) return false;
    }
    if (port == 0) return false;
    return parse_ip(host, static_cast<std::uint16_t>(port), out);
}

stun::Address to_stun_address(const sockaddr_storage& address) {
    if (address.ss_family == AF_INET) {
        const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
        return stun::Address::v4(ntohl(v4.sin_addr.s_addr), ntohs(v4.sin_port));
    }
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
    return stun::Address::v6(
        std::span<const std::byte, 16>(reinterpret_cast<const std::byte*>(&v6.sin6_addr), 16),
        ntohs(v6.sin6_port));
}

std::string address_text(const stun::Address& a) {
    char text[48];
    return {text, a.format(text)};
}

// ---------------------------------------------------------------------------------------------
// The flood.

// A request's fate, one byte per request for the whole run.
enum class RequestState : std::uint8_t { unsent, outstanding, answered, bad, timed_out };

struct Pending {
    std::uint64_t request = 0;
    Clock::time_point sent_at;
};

// One connected UDP socket: one source port, its own window.
struct Source {
    int fd = -1;
    stun::Address local;  // as the server should see it
    std::size_t outstanding = 0;
    // Requests in send order, oldest first; answered ones are dropped lazily when they reach
    // the head. Its capacity bounds the window too, so that one lost request cannot let the
    // queue behind it grow without limit until it times out.
    std::vector<Pending> queue;
    std::size_t head = 0;  // monotonic; index = head % queue.size()
    std::size_t tail = 0;
    bool send_blocked = false;  // the last sendmmsg() hit EAGAIN: wait for POLLOUT
};

struct Results {
    std::uint64_t sent = 0;
    std::uint64_t answered_ok = 0;
    std::uint64_t timeouts = 0;
    std::uint64_t bad_datagrams = 0;
    std::array<std::uint64_t, reasons.size()> by_reason{};
    std::array<std::uint64_t, parse_error_slots> by_parse_error{};
    double elapsed_s = 0;
    bool stopped_by_duration = false;
};

class Flood {
public:
    explicit Flood(const Options& options) : options_(options) {}
    ~Flood() {
        for (const Source& s : sources_) {
            if (s.fd >= 0) ::close(s.fd);
        }
    }
    Flood(const Flood&) = delete;
    Flood& operator=(const Flood&) = delete;

    /// Opens and connects the sockets. False with a message on stderr when one fails.
    bool open(const Endpoint& server, const Endpoint* bind_to);
    void run();
    [[nodiscard]] const Results& results() const { return results_; }
    [[nodiscard]] const std::vector<Source>& sources() const { return sources_; }

private:
    /// How many requests `s` may send now: its window, its queue, the batch, the count.
    [[nodiscard]] std::size_t send_room(const Source& s) const;
    std::size_t send_batch(std::uint16_t index, Clock::time_point now);
    std::size_t receive_batch(std::uint16_t index);
    void validate(std::uint16_t index, std::span<const std::byte> datagram, int flags);
    // Resolves a request: a bad datagram that could be tied to an outstanding request ends it.
    void count_bad(Reason reason);
    void finish_request(std::uint64_t request, RequestState state);
    void expire(Source& source, Clock::time_point now);

    const Options& options_;
    TransactionIds ids_;
    std::vector<Source> sources_;
    std::vector<RequestState> state_;
    std::vector<std::uint16_t> source_of_;
    Results results_;
    std::size_t outstanding_ = 0;
    Clock::duration timeout_{};

    // One batch of buffers, reused for every socket: a batch is sent or processed before the
    // next socket's turn.
    std::array<std::array<std::byte, request_buffer_size>, batch_size> tx_{};
    std::array<std::array<std::byte, receive_buffer_size>, batch_size> rx_{};
    std::array<iovec, batch_size> tx_iov_{};
    std::array<iovec, batch_size> rx_iov_{};
    std::array<mmsghdr, batch_size> tx_msgs_{};
    std::array<mmsghdr, batch_size> rx_msgs_{};
};

bool Flood::open(const Endpoint& server, const Endpoint* bind_to) {
    if (!ids_.init()) {
        std::fprintf(stderr, "stun_flood: the random generator failed\n");
        return false;
    }
    state_.assign(options_.count, RequestState::unsent);
    source_of_.assign(options_.count, 0);
    // Twice the window, rounded to a power of two, so that index arithmetic stays cheap.
    std::size_t queue_size = 1;
    while (queue_size < 2 * options_.window) queue_size *= 2;

    const int family = server.address.ss_family;
    sources_.resize(options_.sources);
    for (std::size_t i = 0; i < sources_.size(); ++i) {
        Source& s = sources_[i];
        s.queue.resize(queue_size);
        s.fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s.fd < 0) {
            std::fprintf(stderr, "stun_flood: socket %zu: %s\n", i, std::strerror(errno));
            return false;
        }
        // Room for a whole window of responses with headroom; the kernel caps it at rmem_max.
        const int buffer = 1 << 20;
        ::setsockopt(s.fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
        ::setsockopt(s.fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
        if (bind_to != nullptr &&
            ::bind(s.fd, reinterpret_cast<const sockaddr*>(&bind_to->address),
                   bind_to->length) != 0) {
            std::fprintf(stderr, "stun_flood: bind: %s\n", std::strerror(errno));
            return false;
        }
        // Connected: the kernel picks a concrete local address that getsockname() reports,
        // filters datagrams from other peers, and reports ICMP errors as ECONNREFUSED.
        if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&server.address), server.length) !=
            0) {
            std::fprintf(stderr, "stun_flood: connect: %s\n", std::strerror(errno));
            return false;
        }
        sockaddr_storage local{};
        socklen_t length = sizeof local;
        if (::getsockname(s.fd, reinterpret_cast<sockaddr*>(&local), &length) != 0) {
            std::fprintf(stderr, "stun_flood: getsockname: %s\n", std::strerror(errno));
            return false;
        }
        s.local = to_stun_address(local);
    }

    for (std::size_t i = 0; i < batch_size; ++i) {
        tx_iov_[i] = {tx_[i].data(), 0};
        tx_msgs_[i].msg_hdr = {};
        tx_msgs_[i].msg_hdr.msg_iov = &tx_iov_[i];
        tx_msgs_[i].msg_hdr.msg_iovlen = 1;
        rx_iov_[i] = {rx_[i].data(), rx_[i].size()};
        rx_msgs_[i].msg_hdr = {};
        rx_msgs_[i].msg_hdr.msg_iov = &rx_iov_[i];
        rx_msgs_[i].msg_hdr.msg_iovlen = 1;
    }
    timeout_ = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(options_.timeout_s));
    return true;
}

void Flood::count_bad(Reason reason) {
    ++results_.bad_datagrams;
    ++results_.by_reason[static_cast<std::size_t>(reason)];
}

void Flood::finish_request(std::uint64_t request, RequestState state) {
    state_[request] = state;
    --sources_[source_of_[request]].outstanding;
    --outstanding_;
}

std::size_t Flood::send_room(const Source& s) const {
    return std::min({options_.window - s.outstanding, s.queue.size() - (s.tail - s.head),
                     batch_size, static_cast<std::size_t>(options_.count - results_.sent)});
}

std::size_t Flood::send_batch(std::uint16_t index, Clock::time_point now) {
    Source& s = sources_[index];
    const std::size_t room = send_room(s);
    if (room == 0) return 0;
    for (std::size_t i = 0; i < room; ++i) {
        std::array<std::byte, stun::transaction_id_size> id;
        ids_.make(results_.sent + i, id);
        stun::MessageWriter writer(tx_[i], stun::Method::binding,
                                   stun::MessageClass::request, id);
        if (options_.fingerprint) writer.add_fingerprint();
        tx_iov_[i].iov_len = writer.size();
    }
    const int sent = ::sendmmsg(s.fd, tx_msgs_.data(), static_cast<unsigned>(room), 0);
    if (sent < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
            s.send_blocked = true;
        } else if (errno == ECONNREFUSED) {
            // A pending ICMP error surfaces on whichever call comes next; nothing was sent.
            count_bad(Reason::connection_refused);
        } else {
            std::fprintf(stderr, "stun_flood: sendmmsg: %s\n", std::strerror(errno));
            s.send_blocked = true;
        }
        return 0;
    }
    s.send_blocked = static_cast<std::size_t>(sent) < room;
    // Only the requests that left are committed; the IDs of the rest are made again next time
    // from the same request numbers.
    for (int i = 0; i < sent; ++i) {
        const std::uint64_t request = results_.sent++;
        state_[request] = RequestState::outstanding;
        source_of_[request] = index;
        s.queue[s.tail++ % s.queue.size()] = {request, now};
    }
    s.outstanding += static_cast<std::size_t>(sent);
    outstanding_ += static_cast<std::size_t>(sent);
    return static_cast<std::size_t>(sent);
}

std::size_t Flood::receive_batch(std::uint16_t index) {
    Source& s = sources_[index];
    const int received = ::recvmmsg(s.fd, rx_msgs_.data(), batch_size, MSG_DONTWAIT, nullptr);
    if (received < 0) {
        if (errno == ECONNREFUSED) {
            // Reading the error clears it; the responses behind it wait for the next poll().
            count_bad(Reason::connection_refused);
            return 0;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            std::fprintf(stderr, "stun_flood: recvmmsg: %s\n", std::strerror(errno));
        }
        return 0;
    }
    for (int i = 0; i < received; ++i) {
        validate(index, std::span<const std::byte>(rx_[i].data(), rx_msgs_[i].msg_len),
                 rx_msgs_[i].msg_hdr.msg_flags);
    }
    return static_cast<std::size_t>(received);
}

void Flood::validate(std::uint16_t index, std::span<const std::byte> datagram, int flags) {
    // Find the request first, from the raw header, so that a response that fails any check
    // still ends its request (as bad) rather than leaving it to time out.
    std::uint64_t request = 0;
    bool known = false;
    if (datagram.size() >= stun::header_size) {
        const auto id = datagram.subspan<8, stun::transaction_id_size>();
        known = ids_.decode(id, request) && request < results_.sent;
    }
    if (!known) {
        stun::Message message;
        const stun::ParseError error = stun::Message::parse(datagram, message);
        if (error != stun::ParseError::ok) {
            ++results_.bad_datagrams;
            ++results_.by_parse_error[static_cast<std::size_t>(error) % parse_error_slots];
        } else {
            count_bad(Reason::unknown_transaction);
        }
        return;
    }
    switch (state_[request]) {
    case RequestState::outstanding: break;
    case RequestState::timed_out: count_bad(Reason::late_response); return;
    default: count_bad(Reason::duplicate_response); return;
    }
    const auto bad = [&](Reason reason) {
        count_bad(reason);
        finish_request(request, RequestState::bad);
    };
    if ((flags & MSG_TRUNC) != 0 || datagram.size() == receive_buffer_size) {
        bad(Reason::oversized);
        return;
    }
    stun::Message message;
    const stun::ParseError error = stun::Message::parse(datagram, message);
    if (error != stun::ParseError::ok) {
        ++results_.bad_datagrams;
        ++results_.by_parse_error[static_cast<std::size_t>(error) % parse_error_slots];
        finish_request(request, RequestState::bad);
        return;
    }
    if (source_of_[request] != index) {
        bad(Reason::wrong_source);
        return;
    }
    // RFC 8489 §6.3.3/§6.3.4: a Binding request is answered by a Binding success or error
    // response with the same transaction ID.
    if (message.is(stun::Method::binding, stun::MessageClass::error_response)) {
        bad(Reason::error_response);
        return;
    }
    if (!message.is(stun::Method::binding, stun::MessageClass::success_response)) {
        bad(Reason::wrong_type);
        return;
    }
    // RFC 8489 §14.7: a FINGERPRINT must verify whenever present. Our requests carry one, and
    // every server we compare against answers in kind; without --fingerprint it is optional.
    if (message.fingerprint().has_value()) {
        if (stun::verify_fingerprint(message) != stun::IntegrityResult::ok) {
            bad(Reason::bad_fingerprint);
            return;
        }
    } else if (options_.fingerprint) {
        bad(Reason::missing_fingerprint);
        return;
    }
    // RFC 8489 §7.3.1: the server puts the request's source transport address in
    // XOR-MAPPED-ADDRESS.
    const auto attribute = message.find(stun::attr::xor_mapped_address);
    if (!attribute) {
        bad(Reason::missing_xor_mapped_address);
        return;
    }
    stun::Address mapped;
    if (stun::decode_xor_address(*attribute, message.transaction_id(), mapped) !=
        stun::ParseError::ok) {
        bad(Reason::bad_xor_mapped_address);
        return;
    }
    if (!(mapped == sources_[index].local)) {
        bad(Reason::wrong_mapped_address);
        return;
    }
    ++results_.answered_ok;
    finish_request(request, RequestState::answered);
}

void Flood::expire(Source& s, Clock::time_point now) {
    while (s.head != s.tail) {
        const Pending& oldest = s.queue[s.head % s.queue.size()];
        if (state_[oldest.request] == RequestState::outstanding) {
            if (now - oldest.sent_at < timeout_) return;
            ++results_.timeouts;
            finish_request(oldest.request, RequestState::timed_out);
        }
        ++s.head;
    }
}

void Flood::run() {
    const Clock::time_point start = Clock::now();
    const Clock::time_point send_deadline =
        start + std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(options_.duration_s));
    // Set when sending stops: the outstanding requests get at most one timeout more.
    Clock::time_point drain_deadline = Clock::time_point::max();
    std::vector<pollfd> pollfds(sources_.size());
    for (std::size_t i = 0; i < sources_.size(); ++i) pollfds[i] = {sources_[i].fd, 0, 0};

    for (;;) {
        const Clock::time_point now = Clock::now();
        bool sending = results_.sent < options_.count;
        if (sending && now >= send_deadline) {
            results_.stopped_by_duration = true;
            sending = false;
        }
        if (!sending) {
            if (drain_deadline == Clock::time_point::max()) drain_deadline = now + timeout_;
            if (outstanding_ == 0 || now >= drain_deadline) break;
        }
        // One poll() finds the sockets with responses waiting, instead of a recvmmsg() per
        // socket that mostly returns EAGAIN. It does not wait when a request can go out;
        // otherwise it sleeps until a response arrives, at most 10 ms so that timeouts and
        // deadlines are checked on time.
        bool can_send = false;
        for (std::size_t i = 0; i < sources_.size(); ++i) {
            const Source& s = sources_[i];
            pollfds[i].events = POLLIN;
            if (sending && s.send_blocked) pollfds[i].events |= POLLOUT;
            if (sending && !s.send_blocked && send_room(s) != 0) can_send = true;
        }
        if (::poll(pollfds.data(), pollfds.size(), can_send ? 0 : 10) < 0) {
            for (pollfd& p : pollfds) p.revents = 0;  // EINTR: go round again
        }
        for (std::size_t i = 0; i < sources_.size(); ++i) {
            const auto index = static_cast<std::uint16_t>(i);
            Source& s = sources_[i];
            // POLLERR: a pending ICMP error, which recvmmsg() reports as ECONNREFUSED.
            if ((pollfds[i].revents & (POLLIN | POLLERR)) != 0) receive_batch(index);
            if ((pollfds[i].revents & POLLOUT) != 0) s.send_blocked = false;
            expire(s, now);
            if (sending && !s.send_blocked) send_batch(index, now);
        }
    }
    for (std::size_t request = 0; request < results_.sent; ++request) {
        if (state_[request] == RequestState::outstanding) ++results_.timeouts;
    }
    results_.elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
}

// ---------------------------------------------------------------------------------------------
// Reports.

bool passed(const Results& r) {
    return r.sent > 0 && r.answered_ok == r.sent && r.bad_datagrams == 0;
}

double rate(const Results& r) { return r.elapsed_s > 0 ? r.answered_ok / r.elapsed_s : 0.0; }

std::string parse_reason_name(std::size_t error) {
    return "parse_" + std::string(stun::to_string(static_cast<stun::ParseError>(error)));
}

void print_human(const Options& o, const Flood& flood) {
    const Results& r = flood.results();
    std::printf("stun_flood: %s, %zu sources (%s ...), window %zu, FINGERPRINT %s\n",
                o.server.c_str(), o.sources, address_text(flood.sources().front().local).c_str(),
                o.window, o.fingerprint ? "on" : "off");
    std::printf("  sent          %llu of %llu (stopped by %s)\n",
                static_cast<unsigned long long>(r.sent),
                static_cast<unsigned long long>(o.count),
                r.stopped_by_duration ? "duration" : "count");
    std::printf("  answered ok   %llu\n", static_cast<unsigned long long>(r.answered_ok));
    std::printf("  timeouts      %llu (unanswered after %.3g s)\n",
                static_cast<unsigned long long>(r.timeouts), o.timeout_s);
    std::printf("  bad datagrams %llu\n", static_cast<unsigned long long>(r.bad_datagrams));
    for (std::size_t i = 0; i < r.by_parse_error.size(); ++i) {
        if (r.by_parse_error[i] == 0) continue;
        std::printf("    %-28s %llu  the datagram is not a valid STUN message\n",
                    parse_reason_name(i).c_str(),
                    static_cast<unsigned long long>(r.by_parse_error[i]));
    }
    for (std::size_t i = 0; i < reasons.size(); ++i) {
        if (r.by_reason[i] == 0) continue;
        std::printf("    %-28s %llu  %.*s\n", std::string(reasons[i].name).c_str(),
                    static_cast<unsigned long long>(r.by_reason[i]),
                    static_cast<int>(reasons[i].help.size()), reasons[i].help.data());
    }
    std::printf("  elapsed       %.3f s\n", r.elapsed_s);
    std::printf("  rate          %.0f answered/s\n", rate(r));
    std::printf("  verdict       %s\n", passed(r) ? "PASS" : "FAIL");
}

void print_json(const Options& o, const Flood& flood) {
    const Results& r = flood.results();
    // Every string printed is ours (option values are validated addresses, reason names are
    // snake_case), so nothing needs escaping.
    std::printf("{\"server\":\"%s\",\"sources\":%zu,\"window\":%zu,\"fingerprint\":%s,"
                "\"count\":%llu,\"sent\":%llu,\"answered_ok\":%llu,\"timeouts\":%llu,"
                "\"bad_responses\":%llu,\"bad_by_reason\":{",
                o.server.c_str(), o.sources, o.window, o.fingerprint ? "true" : "false",
                static_cast<unsigned long long>(o.count),
                static_cast<unsigned long long>(r.sent),
                static_cast<unsigned long long>(r.answered_ok),
                static_cast<unsigned long long>(r.timeouts),
                static_cast<unsigned long long>(r.bad_datagrams));
    const char* separator = "";
    for (std::size_t i = 0; i < r.by_parse_error.size(); ++i) {
        if (r.by_parse_error[i] == 0) continue;
        std::printf("%s\"%s\":%llu", separator, parse_reason_name(i).c_str(),
                    static_cast<unsigned long long>(r.by_parse_error[i]));
        separator = ",";
    }
    for (std::size_t i = 0; i < reasons.size(); ++i) {
        if (r.by_reason[i] == 0) continue;
        std::printf("%s\"%.*s\":%llu", separator, static_cast<int>(reasons[i].name.size()),
                    reasons[i].name.data(), static_cast<unsigned long long>(r.by_reason[i]));
        separator = ",";
    }
    std::printf("},\"stopped_by\":\"%s\",\"elapsed_s\":%.6f,\"rate_per_s\":%.1f,"
                "\"passed\":%s}\n",
                r.stopped_by_duration ? "duration" : "count", r.elapsed_s, rate(r),
                passed(r) ? "true" : "false");
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{"STUN Binding flood: sends Binding requests over several connected UDP sockets "
                 "and validates every response (XOR-MAPPED-ADDRESS, FINGERPRINT). Exit 0 when "
                 "every request was answered correctly, 1 otherwise, 2 on a usage error."};
    app.add_option("--server", o.server, "the STUN server, IP:PORT or [IPv6]:PORT")->required();
    app.add_option("--count", o.count, "requests to send in all")
        ->check(CLI::Range(std::uint64_t{1}, max_count))
        ->capture_default_str();
    app.add_option("--duration", o.duration_s,
                   "stop sending after this many seconds, even short of --count")
        ->check(CLI::Range(0.001, 86400.0))
        ->capture_default_str();
    app.add_option("--sources", o.sources, "UDP sockets, i.e. distinct source ports")
        ->check(CLI::Range(std::size_t{1}, max_sources))
        ->capture_default_str();
    app.add_option("--window", o.window, "outstanding requests per socket")
        ->check(CLI::Range(std::size_t{1}, std::size_t{65536}))
        ->capture_default_str();
    app.add_option("--bind", o.bind_ip, "local IP to send from (default: the kernel's choice)");
    app.add_flag("--fingerprint,!--no-fingerprint", o.fingerprint,
                 "put FINGERPRINT in the requests and require it in the responses (default on)");
    app.add_option("--timeout", o.timeout_s,
                   "a request unanswered after this many seconds counts as a timeout; also the "
                   "drain after sending stops")
        ->check(CLI::Range(0.001, 60.0))
        ->capture_default_str();
    app.add_flag("--json", o.json, "print one JSON object instead of the summary");
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        std::fprintf(stderr, "usage: stun_flood --server IP:PORT [--count N] [--duration S] "
                             "[--sources K] [--window W] (see stun_flood --help)\n");
        return 2;
    }

    Endpoint server;
    if (!parse_server(o.server, server)) {
        std::fprintf(stderr, "stun_flood: --server %s is not IP:PORT; type e.g. "
                             "--server 127.0.0.1:3478 or --server [::1]:3478\n",
                     o.server.c_str());
        return 2;
    }
    Endpoint bind_to;
    if (!o.bind_ip.empty()) {
        if (!parse_ip(o.bind_ip, 0, bind_to)) {
            std::fprintf(stderr, "stun_flood: --bind %s is not an IP address; type e.g. "
                                 "--bind 127.0.0.1 or --bind ::1\n",
                         o.bind_ip.c_str());
            return 2;
        }
        if (bind_to.address.ss_family != server.address.ss_family) {
            std::fprintf(stderr, "stun_flood: --bind %s and --server %s are of different "
                                 "address families; give both IPv4 or both IPv6\n",
                         o.bind_ip.c_str(), o.server.c_str());
            return 2;
        }
    }

    Flood flood(o);
    if (!flood.open(server, o.bind_ip.empty() ? nullptr : &bind_to)) return 1;
    flood.run();
    if (o.json) {
        print_json(o, flood);
    } else {
        print_human(o, flood);
    }
    return passed(flood.results()) ? 0 : 1;
}
