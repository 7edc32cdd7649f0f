// The client of punchcoord (punch/coord_client.h; the protocol is docs/protocol.md).
#include "punch/coord_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

#include <nlohmann/json.hpp>

#include "punch/udp_socket.h"
#include "stun/sfu_token.h"

namespace punch {
namespace {

using nlohmann::json;

std::string address_text(const stun::Address& address) {
    std::array<char, 48> text{};
    return std::string(text.data(), address.format(text));
}

// "192.0.2.1:3478" or "[2001:db8::1]:3478" (what the coordinator sends: numeric only).
bool parse_ip_port(const std::string& text, stun::Address& out) {
    std::string host;
    std::string port;
    if (!text.empty() && text.front() == '[') {
        const std::size_t close = text.find("]:");
        if (close == std::string::npos) return false;
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const std::size_t colon = text.rfind(':');
        if (colon == std::string::npos) return false;
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    unsigned value = 0;
    const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || error != std::errc{} || end != port.data() + port.size() || value == 0 ||
        value > 65535)
        return false;
    return stun::Address::from_string(host, static_cast<std::uint16_t>(value), out);
}

json candidates_json(const std::vector<CoordCandidate>& candidates) {
    json out = json::array();
    for (const CoordCandidate& c : candidates)
        out.push_back({{"type", c.type}, {"address", address_text(c.address)}});
    return out;
}

// Candidates from the wire; one the client cannot parse is left out (the coordinator checked
// them, so that would be a newer type of address).
std::vector<CoordCandidate> parse_candidates(const json& list) {
    std::vector<CoordCandidate> out;
    if (!list.is_array()) return out;
    for (const json& c : list) {
        if (!c.is_object() || !c.contains("type") || !c.contains("address") ||
            !c["type"].is_string() || !c["address"].is_string())
            continue;
        CoordCandidate candidate;
        candidate.type = c["type"].get<std::string>();
        if (parse_ip_port(c["address"].get<std::string>(), candidate.address))
            out.push_back(std::move(candidate));
    }
    return out;
}

std::vector<std::string> strings(const json& reply, const char* key) {
    std::vector<std::string> out;
    const auto it = reply.find(key);
    if (it == reply.end() || !it->is_array()) return out;
    for (const json& s : *it)
        if (s.is_string()) out.push_back(s.get<std::string>());
    return out;
}

template <typename T>
T value_or(const json& object, const char* key, T fallback) {
    const auto it = object.find(key);
    if (it == object.end()) return fallback;
    try {
        return it->get<T>();
    } catch (const json::exception&) {
        return fallback;
    }
}

// The status of a reply: ok, or the coordinator's error.
CoordStatus status_of(const json& reply) {
    CoordStatus status;
    status.ok = value_or(reply, "ok", false);
    if (!status.ok) {
        const json error = reply.value("error", json::object());
        status.code = value_or<std::string>(error, "code", "bad_reply");
        status.message = value_or<std::string>(error, "message", "the reply carries no error");
        status.limit = value_or<std::string>(error, "limit", "");
    }
    return status;
}

std::function<void(const CoordStatus&, const std::string&)> status_only(
    std::function<void(const CoordStatus&)> done) {
    return [done = std::move(done)](const CoordStatus& status, const std::string&) {
        if (done) done(status);
    };
}

}  // namespace

CoordClient::CoordClient(EventLoop& loop, CoordClientConfig config)
    : loop_(loop), config_(std::move(config)) {}

CoordClient::~CoordClient() {
    *alive_ = false;
    if (connect_timer_ != 0) loop_.cancel(connect_timer_);
    if (ping_timer_ != 0) loop_.cancel(ping_timer_);
    for (auto& [id, pending] : pending_) loop_.cancel(pending.timer);
    if (fd_ >= 0) {
        loop_.unwatch_fd(fd_);
        ::close(fd_);
    }
}

void CoordClient::connect(std::function<void(const std::string& error)> done) {
    if (state_ != State::idle) {
        done("connect: already " + std::string(state_ == State::closed ? "closed; make a new "
                                                                          "CoordClient"
                                                                        : "connected"));
        return;
    }
    server_text_ = config_.server;
    stun::Address server;
    if (const std::string error = resolve_host_port(config_.server, server); !error.empty()) {
        state_ = State::closed;
        done(error);
        return;
    }
    sockaddr_storage address{};
    socklen_t length = 0;
    if (server.family == stun::AddressFamily::ipv4) {
        auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
        v4->sin_family = AF_INET;
        v4->sin_port = htons(server.port);
        std::memcpy(&v4->sin_addr, server.ip.data(), 4);
        length = sizeof(sockaddr_in);
    } else {
        auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(server.port);
        std::memcpy(&v6->sin6_addr, server.ip.data(), 16);
        length = sizeof(sockaddr_in6);
    }
    fd_ = ::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        state_ = State::closed;
        done(config_.server + ": socket: " + std::strerror(errno));
        return;
    }
    const int one = 1;
    // Requests are small and must not wait for Nagle's algorithm.
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), length) != 0 &&
        errno != EINPROGRESS) {
        const std::string error = config_.server + ": connect: " + std::strerror(errno);
        ::close(fd_);
        fd_ = -1;
        state_ = State::closed;
        done(error);
        return;
    }
    state_ = State::connecting;
    connect_done_ = std::move(done);
    if (const std::string error = loop_.watch_fd(fd_, [this] { on_readable(); }); !error.empty()) {
        fail(config_.server + ": " + error, false);
        return;
    }
    (void)loop_.set_writable(fd_, [this] { on_connect_ready(); });
    connect_timer_ = loop_.after(config_.connect_timeout, [this] {
        connect_timer_ = 0;
        fail(config_.server + ": no answer within " +
                 std::to_string(config_.connect_timeout.count() / 1000) + " ms",
             false);
    });
}

void CoordClient::on_connect_ready() {
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
        fail(config_.server + ": connect: " + std::strerror(error), false);
        return;
    }
    loop_.cancel(connect_timer_);
    connect_timer_ = 0;
    state_ = State::connected;
    (void)loop_.set_writable(fd_, {});
    schedule_ping();
    auto done = std::move(connect_done_);
    connect_done_ = nullptr;
    const auto alive = alive_;
    if (done) done("");
    if (!*alive) return;
    flush();  // requests queued by the callback
}

void CoordClient::schedule_ping() {
    ping_timer_ = loop_.after(config_.ping_interval, [this] {
        ping_timer_ = 0;
        if (state_ != State::connected) return;
        // A ping unanswered within the request timeout: the coordinator or the path is dead
        // even if TCP has not noticed yet (a NAT that forgot the mapping drops silently).
        ping([this](const CoordStatus& status) {
            if (status.code == "timeout")
                fail("the coordinator did not answer a ping within " +
                         std::to_string(config_.request_timeout.count() / 1000) + " ms",
                     true);
        });
        schedule_ping();
    });
}

void CoordClient::close() {
    fail("closed by the client", false);
}

void CoordClient::fail(const std::string& reason, bool notify) {
    if (state_ == State::closed) return;
    const bool was_connecting = state_ == State::connecting;
    state_ = State::closed;
    if (connect_timer_ != 0) loop_.cancel(connect_timer_);
    if (ping_timer_ != 0) loop_.cancel(ping_timer_);
    connect_timer_ = ping_timer_ = 0;
    if (fd_ >= 0) {
        loop_.unwatch_fd(fd_);
        ::close(fd_);
        fd_ = -1;
    }
    const auto alive = alive_;
    if (was_connecting && connect_done_) {
        auto done = std::move(connect_done_);
        connect_done_ = nullptr;
        done(reason);
        if (!*alive) return;
    }
    // Every pending request ends now, once.
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& [id, request] : pending) {
        loop_.cancel(request.timer);
        request.callback({false, "closed", reason, {}}, {});
        if (!*alive) return;
    }
    if (notify && on_closed_) on_closed_(reason);
}

void CoordClient::send_request(const std::string& op, std::string fields_json,
                               ReplyCallback callback) {
    if (state_ != State::connected && state_ != State::connecting) {
        callback({false, "not_connected", "the client is not connected to the coordinator", {}},
                 {});
        return;
    }
    const std::uint64_t id = next_id_++;
    // {"op":...,"id":N, <fields>}: the fields come as an object's text.
    json request = fields_json.empty() ? json::object() : json::parse(fields_json);
    request["op"] = op;
    request["id"] = id;
    output_ += request.dump(-1, ' ', false, json::error_handler_t::replace);
    output_ += '\n';
    Pending pending;
    pending.callback = std::move(callback);
    pending.timer = loop_.after(config_.request_timeout, [this, id] {
        const auto it = pending_.find(id);
        if (it == pending_.end()) return;
        auto expired = std::move(it->second.callback);
        pending_.erase(it);
        expired({false, "timeout",
                 "no reply within " + std::to_string(config_.request_timeout.count() / 1000) +
                     " ms",
                 {}},
                {});
    });
    pending_.emplace(id, std::move(pending));
    if (state_ == State::connected) flush();
}

void CoordClient::flush() {
    while (!output_.empty() && fd_ >= 0) {
        const ssize_t n = ::send(fd_, output_.data(), output_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            output_.erase(0, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            (void)loop_.set_writable(fd_, [this] { on_writable(); });
            return;
        }
        fail(config_.server + ": send: " + std::strerror(errno), true);
        return;
    }
    if (fd_ >= 0) (void)loop_.set_writable(fd_, {});
}

void CoordClient::on_writable() { flush(); }

void CoordClient::on_readable() {
    if (state_ == State::connecting) return;  // the writable callback decides
    std::array<char, 16384> buffer;
    const auto alive = alive_;
    for (;;) {
        const ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
            fail(n == 0 ? "the coordinator closed the connection"
                        : config_.server + ": recv: " + std::strerror(errno),
                 true);
            return;
        }
        input_.append(buffer.data(), static_cast<std::size_t>(n));
        std::size_t start = 0;
        for (;;) {
            const std::size_t end = input_.find('\n', start);
            if (end == std::string::npos) break;
            const std::string line = input_.substr(start, end - start);
            start = end + 1;
            handle_line(line);
            if (!*alive || state_ != State::connected) return;
        }
        input_.erase(0, start);
        if (input_.size() > config_.max_line_bytes) {
            fail("the coordinator sent a line longer than " +
                     std::to_string(config_.max_line_bytes) + " bytes",
                 true);
            return;
        }
    }
}

void CoordClient::handle_line(const std::string& line) {
    json message;
    try {
        message = json::parse(line);
    } catch (const json::exception&) {
        ++ignored_lines_;
        return;
    }
    if (!message.is_object()) {
        ++ignored_lines_;
        return;
    }
    if (const auto event = message.find("event"); event != message.end() && event->is_string()) {
        const std::string name = event->get<std::string>();
        const std::string room = value_or<std::string>(message, "room", "");
        if (name == "peer") {
            PeerInfo peer;
            peer.room = room;
            peer.name = value_or<std::string>(message, "name", "");
            peer.candidates = parse_candidates(message.value("candidates", json::array()));
            peer.nat_type = value_or<std::string>(message, "nat_type", "unknown");
            peer.region = value_or<std::string>(message, "region", "");
            peer.ufrag = value_or<std::string>(message, "ufrag", "");
            peer.password = value_or<std::string>(message, "password", "");
            peer.controlling = value_or(message, "controlling", false);
            if (on_peer_) on_peer_(peer);
        } else if (name == "candidates") {
            if (on_candidates_)
                on_candidates_(room, value_or<std::string>(message, "from", ""),
                               parse_candidates(message.value("candidates", json::array())));
        } else if (name == "signal") {
            if (on_signal_)
                on_signal_(room, value_or<std::string>(message, "from", ""),
                           message.value("data", json::object()).dump());
        } else if (name == "peer_left") {
            if (on_peer_left_) on_peer_left_(room, value_or<std::string>(message, "name", ""));
        } else if (name == "closing") {
            // The coordinator is about to close (idle timeout): say why when it does.
            fail(value_or<std::string>(message, "code", "closing") + ": " +
                     value_or<std::string>(message, "message", ""),
                 true);
        } else {
            ++ignored_lines_;  // an event of a newer coordinator (node_expired: not a client's)
        }
        return;
    }
    const auto id = message.find("id");
    if (id == message.end() || !id->is_number_unsigned()) {
        // An error with a null id (a line the coordinator could not read, a refused
        // connection): it concerns no request of ours in particular.
        if (!value_or(message, "ok", true)) {
            const CoordStatus status = status_of(message);
            if (status.code == "limit" || status.code == "too_large") {
                fail(status.code + ": " + status.message, true);
                return;
            }
        }
        ++ignored_lines_;
        return;
    }
    const auto it = pending_.find(id->get<std::uint64_t>());
    if (it == pending_.end()) {
        ++ignored_lines_;  // a reply after its timeout
        return;
    }
    auto callback = std::move(it->second.callback);
    loop_.cancel(it->second.timer);
    pending_.erase(it);
    callback(status_of(message), line);
}

void CoordClient::hello(std::function<void(const HelloReply&)> done) {
    send_request("hello", {}, [done = std::move(done)](const CoordStatus& status,
                                                       const std::string& text) {
        HelloReply reply;
        reply.status = status;
        if (status.ok) {
            const json r = json::parse(text);
            reply.protocol = value_or(r, "protocol", 0);
            reply.stun_servers = strings(r, "stun");
            reply.relay_servers = strings(r, "relay");
            reply.server_time_ms = value_or<std::uint64_t>(r, "time_ms", 0);
            reply.idle_timeout_ms = value_or<std::uint64_t>(r, "idle_timeout_ms", 0);
            const json limits = r.value("limits", json::object());
            reply.max_members_per_room = value_or<std::size_t>(limits, "max_members_per_room", 0);
            reply.max_line_bytes = value_or<std::size_t>(limits, "max_line_bytes", 0);
            reply.turn_credentials = value_or(r, "turn_credentials", false);
        }
        done(reply);
    });
}

void CoordClient::join(const JoinRequest& request, std::function<void(const JoinReply&)> done) {
    json fields = {{"room", request.room},
                   {"name", request.name},
                   {"candidates", candidates_json(request.candidates)}};
    if (!request.nat_type.empty()) fields["nat_type"] = request.nat_type;
    if (!request.region.empty()) fields["region"] = request.region;
    send_request("join", fields.dump(), [done = std::move(done)](const CoordStatus& status,
                                                                 const std::string& text) {
        JoinReply reply;
        reply.status = status;
        if (status.ok) {
            const json r = json::parse(text);
            reply.room = value_or<std::string>(r, "room", "");
            reply.name = value_or<std::string>(r, "name", "");
            reply.ufrag = value_or<std::string>(r, "ufrag", "");
            reply.password = value_or<std::string>(r, "password", "");
            reply.controlling = value_or(r, "controlling", false);
            reply.relay_servers = strings(r, "relay");
            reply.stun_servers = strings(r, "stun");
            if (const auto turn = r.find("turn"); turn != r.end() && turn->is_object()) {
                reply.turn.username = value_or<std::string>(*turn, "username", "");
                reply.turn.password = value_or<std::string>(*turn, "password", "");
                reply.turn.ttl_s = value_or<std::uint64_t>(*turn, "ttl_s", 0);
                reply.turn.expires_unix = value_or<std::uint64_t>(*turn, "expires_unix", 0);
            }
        }
        done(reply);
    });
}

void CoordClient::leave(const std::string& room, std::function<void(const CoordStatus&)> done) {
    send_request("leave", json{{"room", room}}.dump(), status_only(std::move(done)));
}

void CoordClient::send_candidates(const std::string& room,
                                  const std::vector<CoordCandidate>& candidates,
                                  std::function<void(const CoordStatus&)> done) {
    send_request("candidates",
                 json{{"room", room}, {"candidates", candidates_json(candidates)}}.dump(),
                 status_only(std::move(done)));
}

void CoordClient::signal(const std::string& room, const std::string& to,
                         const std::string& data_json,
                         std::function<void(const CoordStatus&)> done) {
    json data;
    try {
        data = json::parse(data_json);
    } catch (const json::exception& e) {
        if (done) done({false, "bad_request", std::string("data_json: ") + e.what(), {}});
        return;
    }
    json fields = {{"room", room}, {"data", std::move(data)}};
    if (!to.empty()) fields["to"] = to;
    send_request("signal", fields.dump(), status_only(std::move(done)));
}

namespace {

// The `sfu` reply's fields (docs/sfu.md). Returns "" or what does not hold together, naming
// the field.
std::string parse_sfu_reply(const json& r, SfuReply& reply) {
    const auto text_field = [&](const char* key, std::string& out) -> bool {
        const auto it = r.find(key);
        if (it == r.end()) return true;
        if (!it->is_string()) return false;
        out = it->get<std::string>();
        return true;
    };
    for (auto [key, out] : {std::pair{"room", &reply.room}, std::pair{"session", &reply.session},
                            std::pair{"username", &reply.username},
                            std::pair{"password", &reply.password}})
        if (!text_field(key, *out)) return std::string(key) + " is not a string";
    if (const auto it = r.find("expires_unix"); it != r.end()) {
        if (!it->is_number_unsigned()) return "expires_unix is not a non-negative integer";
        reply.expires_unix = it->get<std::uint64_t>();
    }
    if (const auto it = r.find("race"); it != r.end()) {
        if (!it->is_number_unsigned() || it->get<std::uint64_t>() == 0 ||
            it->get<std::uint64_t>() > 64)
            return "race is not an integer from 1 to 64";
        reply.race = static_cast<std::uint32_t>(it->get<std::uint64_t>());
    }
    const json candidates = r.value("candidates", json::array());
    if (!candidates.is_array()) return "candidates is not an array";
    for (const json& c : candidates) {
        SfuOffer candidate;
        if (!c.is_object() || !c.contains("node_id") || !c["node_id"].is_number_unsigned())
            return "a candidate without a numeric node_id";
        candidate.node_id = c["node_id"].get<std::uint64_t>();
        const std::string address = value_or<std::string>(c, "address", "");
        if (!parse_ip_port(address, candidate.address))
            return "candidate node " + std::to_string(candidate.node_id) + ": address \"" +
                   address + "\" is not a numeric IP:port";
        candidate.nat_type = value_or<std::string>(c, "nat_type", "unknown");
        candidate.region = value_or<std::string>(c, "region", "");
        candidate.load = value_or<std::uint64_t>(c, "load", 0);
        reply.candidates.push_back(std::move(candidate));
    }
    const json dropped = r.value("dropped", json::array());
    if (!dropped.is_array()) return "dropped is not an array";
    for (const json& d : dropped) {
        if (!d.is_object()) return "a dropped entry is not an object";
        reply.dropped.push_back({value_or<std::uint64_t>(d, "node_id", 0),
                                 value_or<std::string>(d, "reason", "")});
    }
    if (reply.candidates.empty()) return "";
    // Candidates are useless without a token the nodes accept: check it as a node will.
    stun::SfuUsername parsed;
    if (stun::parse_sfu_username(reply.username, parsed) != stun::SfuTokenError::ok)
        return "username \"" + reply.username +
               "\" is not an SFU token \"<expiry>:<16 hex digits>:<participant>\"";
    if (reply.password.size() != stun::sfu_password_size)
        return "password is " + std::to_string(reply.password.size()) + " characters, not " +
               std::to_string(stun::sfu_password_size);
    // The username's second field (checked above: 16 hex digits after the first ':').
    const std::string token_session = reply.username.substr(reply.username.find(':') + 1, 16);
    if (reply.session.empty()) reply.session = token_session;
    if (reply.session != token_session)
        return "session \"" + reply.session + "\" is not the username's";
    if (reply.expires_unix == 0) reply.expires_unix = parsed.expiry;
    return "";
}

}  // namespace

void CoordClient::sfu(const std::string& room, const std::map<std::uint64_t, double>& rtt_ms,
                      std::function<void(const SfuReply&)> done) {
    json fields = {{"room", room}};
    if (!rtt_ms.empty()) {
        json rtts = json::object();
        for (const auto& [node, ms] : rtt_ms) rtts[std::to_string(node)] = ms;
        fields["rtt_ms"] = std::move(rtts);
    }
    send_request("sfu", fields.dump(), [done = std::move(done)](const CoordStatus& status,
                                                                const std::string& text) {
        SfuReply reply;
        reply.status = status;
        if (status.ok) {
            if (const std::string error = parse_sfu_reply(json::parse(text), reply);
                !error.empty()) {
                SfuReply bad;
                bad.status = {false, "bad_reply", "sfu: " + error, {}};
                done(bad);
                return;
            }
        }
        done(reply);
    });
}

void CoordClient::report(const OutcomeReport& report,
                         std::function<void(const CoordStatus&)> done) {
    json fields = {{"room", report.room}, {"rung", report.rung}};
    if (report.time_to_connect_ms) fields["time_to_connect_ms"] = *report.time_to_connect_ms;
    if (!report.local_nat.empty()) fields["local_nat"] = report.local_nat;
    if (!report.remote_nat.empty()) fields["remote_nat"] = report.remote_nat;
    send_request("report", fields.dump(), status_only(std::move(done)));
}

void CoordClient::ping(std::function<void(const CoordStatus&)> done) {
    send_request("ping", {}, status_only(std::move(done)));
}

}  // namespace punch
