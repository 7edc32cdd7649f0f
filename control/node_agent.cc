// The engine's link to punchcoord as an SFU node (control/node_agent.h).
#include "control/node_agent.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <utility>

#include "control/log.h"
#include "control/socket_address.h"

namespace control {
namespace {

using nlohmann::json;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

constexpr std::size_t max_punch_addresses = 16;
// As the coordinator's max_json_depth: the deepest line worth parsing.
constexpr int max_json_depth = 16;

std::string address_text(const stun::Address& address) {
    std::array<char, 48> text{};
    return std::string(text.data(), address.format(text));
}

long long ms(punch::Time t) {
    return static_cast<long long>(duration_cast<milliseconds>(t).count());
}

// "203.0.113.7:40000" or "[2001:db8::7]:40000", numeric only: an event must never make the
// control thread wait on a name lookup.
bool numeric_address(std::string_view text, stun::Address& out) {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return false;
    std::string_view host = text.substr(0, colon);
    const std::string_view port = text.substr(colon + 1);
    const bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
    if (bracketed) host = host.substr(1, host.size() - 2);
    // An IPv6 address needs its brackets, or its last group would read as the port.
    if ((host.find(':') != std::string_view::npos) != bracketed) return false;
    unsigned value = 0;
    const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || error != std::errc{} || end != port.data() + port.size() || value == 0 ||
        value > 65535)
        return false;
    return stun::Address::from_string(host, static_cast<std::uint16_t>(value), out);
}

// Brackets outside strings, before the parser sees the line.
bool too_deep(std::string_view line) {
    int depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (in_string) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max_json_depth) return true;
        } else if (c == '}' || c == ']') {
            --depth;
        }
    }
    return false;
}

// Fields of a line from the coordinator, by type, with a fallback when absent or of another
// type (checked, not converted: a negative or fractional ttl_ms is not a ttl): a coordinator
// of another version must not make the control thread throw or misread.
bool flag_field(const json& object, const char* key) {
    const auto it = object.find(key);
    return it != object.end() && it->is_boolean() && it->get<bool>();
}

std::string text_field(const json& object, const char* key) {
    const auto it = object.find(key);
    return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::uint64_t count_field(const json& object, const char* key, std::uint64_t fallback) {
    const auto it = object.find(key);
    return it != object.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : fallback;
}

std::string session_hex(std::uint64_t session) {
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(session));
    return text;
}

struct RejectionInfo {
    std::string_view name;
    std::string_view help;
};

constexpr RejectionInfo punch_event_rejections[] = {
#define CONTROL_PUNCH_EVENT_INFO(name, help) {#name, help},
    CONTROL_PUNCH_EVENT_REJECTIONS(CONTROL_PUNCH_EVENT_INFO)
#undef CONTROL_PUNCH_EVENT_INFO
};

}  // namespace

std::string_view to_string(NodeAgentState state) noexcept {
    switch (state) {
        case NodeAgentState::discovering: return "discovering";
        case NodeAgentState::waiting: return "waiting";
        case NodeAgentState::connecting: return "connecting";
        case NodeAgentState::registering: return "registering";
        case NodeAgentState::registered: return "registered";
    }
    return "?";
}

std::string_view to_string(PunchEventRejection rejection) noexcept {
    return punch_event_rejections[static_cast<std::size_t>(rejection)].name;
}

std::string_view help(PunchEventRejection rejection) noexcept {
    return punch_event_rejections[static_cast<std::size_t>(rejection)].help;
}

std::optional<PunchEventRejection> parse_punch_event(const json& event, std::uint64_t now_unix,
                                                     stun::AddressFamily family,
                                                     PunchOrder& out) {
    const auto username = event.find("username");
    if (username == event.end() || !username->is_string())
        return PunchEventRejection::bad_username;
    stun::SfuUsername parsed;
    switch (stun::check_sfu_username(username->get_ref<const std::string&>(), now_unix,
                                     parsed)) {
        case stun::SfuTokenError::ok: break;
        case stun::SfuTokenError::expired: return PunchEventRejection::expired;
        default: return PunchEventRejection::bad_username;
    }
    // The username is what the requests carry; "session" and "participant" repeat it for
    // people reading the line, and a line where they disagree is not one to act on.
    const auto session = event.find("session");
    if (session != event.end() &&
        (!session->is_string() || session->get_ref<const std::string&>() !=
                                      session_hex(parsed.session)))
        return PunchEventRejection::mismatch;
    const auto participant = event.find("participant");
    if (participant != event.end() &&
        (!participant->is_string() ||
         participant->get_ref<const std::string&>() != parsed.participant))
        return PunchEventRejection::mismatch;
    const auto addresses = event.find("addresses");
    if (addresses == event.end() || !addresses->is_array() || addresses->empty() ||
        addresses->size() > max_punch_addresses)
        return PunchEventRejection::bad_addresses;
    PunchOrder order;
    order.username = username->get<std::string>();
    for (const json& entry : *addresses) {
        stun::Address address;
        if (!entry.is_string() ||
            !numeric_address(entry.get_ref<const std::string&>(), address))
            return PunchEventRejection::bad_addresses;
        if (address.family == family) order.addresses.push_back(address);
    }
    if (order.addresses.empty()) return PunchEventRejection::no_usable_address;
    out = std::move(order);
    return std::nullopt;
}

NodeAgent::NodeAgent(NodeAgentConfig config, const punch::Clock& clock,
                     punch::DatagramSender& transport, std::function<std::uint32_t()> load,
                     std::function<std::uint64_t()> unix_now)
    : config_(std::move(config)),
      clock_(clock),
      load_(std::move(load)),
      unix_now_(std::move(unix_now)),
      discovery_(clock, timers_, transport, config_.local, config_.discovery_policy),
      puncher_(clock, transport, config_.token_secret, config_.punch) {
    // From the first poll(), not from here: the owner's loop drives everything.
    discovery_timer_ = timers_.schedule(clock_.now(), [this] { start_discovery(); });
}

NodeAgent::~NodeAgent() {
    discovery_.cancel();
    if (fd_ >= 0) ::close(fd_);
}

void NodeAgent::poll() {
    timers_.run_due(clock_.now());
    puncher_.poll();
    do_io();
    // Replies come in request order, so the oldest pending request is the one overdue first.
    if (fd_ >= 0 && !pending_.empty() && clock_.now() >= pending_.front().deadline) {
        ++counters_.request_timeouts;
        close_connection("the coordinator did not answer " + pending_.front().op + " within " +
                             std::to_string(ms(config_.request_timeout)) + " ms",
                         true);
    }
}

short NodeAgent::events() const noexcept {
    if (fd_ < 0) return 0;
    return static_cast<short>(POLLIN | (connecting_ || !output_.empty() ? POLLOUT : 0));
}

std::optional<punch::Time> NodeAgent::next_deadline() const {
    std::optional<punch::Time> earliest = timers_.next_deadline();
    const auto consider = [&](std::optional<punch::Time> t) {
        if (t && (!earliest || *t < *earliest)) earliest = t;
    };
    consider(puncher_.next_deadline());
    if (fd_ >= 0 && !pending_.empty()) consider(pending_.front().deadline);
    return earliest;
}

bool NodeAgent::on_datagram(const stun::Address& from, std::span<const std::byte> datagram) {
    if (puncher_.on_datagram(from, datagram)) return true;
    if (discovery_.running() &&
        discovery_.on_datagram(from, datagram) == punch::DatagramVerdict::answered)
        return true;
    ++counters_.datagrams_ignored;
    return false;
}

// --- Discovery -----------------------------------------------------------------------------

void NodeAgent::start_discovery() {
    discovery_timer_ = 0;
    if (!config_.stun_server) {
        public_address_ = config_.public_address.value_or(config_.local);
        nat_type_ = config_.nat_type;
        start_connect();
        return;
    }
    ++counters_.discovery_runs;
    state_ = NodeAgentState::discovering;
    if (!discovery_.start(*config_.stun_server,
                          [this](const DiscoveryReport& report) { on_discovered(report); })) {
        log_warn("node: cannot start NAT discovery (no random transaction ID); retrying in " +
                 std::to_string(ms(config_.discovery_retry)) + " ms");
        state_ = NodeAgentState::waiting;
        discovery_timer_ = timers_.schedule(clock_.now() + config_.discovery_retry,
                                            [this] { start_discovery(); });
    }
}

void NodeAgent::on_discovered(const DiscoveryReport& report) {
    discovery_report_ = report;
    const std::string server = address_text(*config_.stun_server);
    if (!report.public_address) {
        log_warn("node: STUN server " + server + " gave no public address (test I: " +
                 std::string(punch::to_string(report.tests.mapping1.outcome)) +
                 "); not registering with punchcoord; next try in " +
                 std::to_string(ms(config_.discovery_retry)) +
                 " ms (check [node] stun_server and the path to it)");
        state_ = NodeAgentState::waiting;
        discovery_timer_ = timers_.schedule(clock_.now() + config_.discovery_retry,
                                            [this] { start_discovery(); });
        return;
    }
    public_address_ = report.public_address;
    nat_type_ = std::string(punch::to_string(report.classification.type));
    log_info("node: public SFU address " + address_text(*public_address_) + ", NAT " + nat_type_ +
             " (mapping " + std::string(punch::to_string(report.classification.mapping)) +
             ", filtering " + std::string(punch::to_string(report.classification.filtering)) +
             ") from " + server + " in " + std::to_string(ms(report.elapsed)) + " ms");
    start_connect();
}

// --- The coordinator connection ------------------------------------------------------------

void NodeAgent::start_connect() {
    reconnect_timer_ = 0;
    const stun::Address& server = config_.coordinator_address;
    sockaddr_storage address{};
    const socklen_t length = to_sockaddr(server, address);
    fd_ = ::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        close_connection(std::string("socket: ") + std::strerror(errno), false);
        return;
    }
    const int one = 1;
    // Requests are small and must not wait for Nagle's algorithm.
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    state_ = NodeAgentState::connecting;
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), length) == 0) {
        on_connected();
        return;
    }
    if (errno != EINPROGRESS) {
        close_connection(std::string("connect: ") + std::strerror(errno), false);
        return;
    }
    connecting_ = true;
    connect_timer_ = timers_.schedule(clock_.now() + config_.connect_timeout, [this] {
        connect_timer_ = 0;
        close_connection("no answer within " + std::to_string(ms(config_.connect_timeout)) +
                             " ms",
                         false);
    });
}

void NodeAgent::on_connected() {
    connecting_ = false;
    if (connect_timer_ != 0) timers_.cancel(connect_timer_);
    connect_timer_ = 0;
    ++counters_.connects;
    log_info("node: connected to punchcoord " + config_.coordinator);
    send_register();
}

void NodeAgent::close_connection(const std::string& why, bool was_connected) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    connecting_ = false;
    input_.clear();
    output_.clear();
    pending_.clear();
    node_id_.reset();
    for (punch::TimerId* timer : {&connect_timer_, &heartbeat_timer_}) {
        if (*timer != 0) timers_.cancel(*timer);
        *timer = 0;
    }
    if (was_connected)
        ++counters_.disconnects;
    else
        ++counters_.connect_failures;
    schedule_reconnect();
    log_warn("node: punchcoord " + config_.coordinator + ": " + why + "; reconnecting in " +
             std::to_string(ms(backoff_)) + " ms");
}

void NodeAgent::schedule_reconnect() {
    // Doubling from reconnect_min to reconnect_max: a coordinator that is down is not hammered
    // by every node at once, and one that comes back is found within reconnect_max.
    backoff_ = backoff_ == punch::Time{0} ? config_.reconnect_min
                                          : std::min(backoff_ * 2, config_.reconnect_max);
    state_ = NodeAgentState::waiting;
    if (reconnect_timer_ != 0) timers_.cancel(reconnect_timer_);
    reconnect_timer_ = timers_.schedule(clock_.now() + backoff_, [this] { start_connect(); });
}

void NodeAgent::do_io() {
    if (fd_ < 0) return;
    pollfd ready{fd_, events(), 0};
    if (::poll(&ready, 1, 0) <= 0) return;
    if (connecting_) {
        if ((ready.revents & (POLLOUT | POLLERR | POLLHUP)) == 0) return;
        int error = 0;
        socklen_t length = sizeof error;
        ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error != 0) {
            close_connection(std::string("connect: ") + std::strerror(error), false);
            return;
        }
        on_connected();
        return;
    }
    if ((ready.revents & (POLLIN | POLLHUP | POLLERR)) != 0) read_lines();
    if (fd_ >= 0 && !output_.empty()) flush();
}

void NodeAgent::read_lines() {
    char buffer[16384];
    for (;;) {
        const ssize_t n = ::recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n == 0) {
            close_connection("the coordinator closed the connection", true);
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            close_connection(std::string("recv: ") + std::strerror(errno), true);
            return;
        }
        input_.append(buffer, static_cast<std::size_t>(n));
        std::size_t start = 0;
        for (std::size_t end; (end = input_.find('\n', start)) != std::string::npos;
             start = end + 1) {
            std::string_view line(input_.data() + start, end - start);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            handle_line(line);
            if (fd_ < 0) return;  // the line ended the connection
        }
        input_.erase(0, start);
        if (input_.size() > config_.max_line_bytes) {
            ++counters_.bad_lines;
            close_connection("a line longer than " + std::to_string(config_.max_line_bytes) +
                                 " bytes",
                             true);
            return;
        }
    }
}

void NodeAgent::flush() {
    while (!output_.empty()) {
        const ssize_t n = ::send(fd_, output_.data(), output_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            close_connection(std::string("send: ") + std::strerror(errno), true);
            return;
        }
        output_.erase(0, static_cast<std::size_t>(n));
    }
}

void NodeAgent::handle_line(std::string_view line) {
    if (line.empty()) return;
    json message;
    if (!too_deep(line)) message = json::parse(line, nullptr, false);
    if (!message.is_object()) {
        ++counters_.bad_lines;
        log_warn("node: punchcoord sent a line that is not a JSON object (" +
                 std::to_string(line.size()) + " bytes); ignored");
        return;
    }
    if (message.contains("event"))
        handle_event(message);
    else
        handle_reply(message);
}

void NodeAgent::send_request(const std::string& op, json fields) {
    const std::uint64_t id = next_id_++;
    if (op == "register" || op == "heartbeat") reported_draining_ = draining_;
    fields["op"] = op;
    fields["id"] = id;
    output_ += fields.dump(-1, ' ', false, json::error_handler_t::replace);
    output_ += '\n';
    pending_.push_back({id, op, clock_.now() + config_.request_timeout});
    flush();
}

void NodeAgent::send_register() {
    state_ = NodeAgentState::registering;
    json fields = {{"role", "sfu"},
                   {"address", address_text(*public_address_)},
                   {"nat_type", nat_type_},
                   {"load", reported_load()}};
    if (!config_.region.empty()) fields["region"] = config_.region;
    if (!config_.node_secret.empty()) fields["secret"] = config_.node_secret;
    send_request("register", std::move(fields));
}

void NodeAgent::send_heartbeat() {
    heartbeat_timer_ = 0;
    send_request("heartbeat", {{"load", reported_load()}});
}

std::uint32_t NodeAgent::reported_load() const {
    return draining_ ? draining_load : load_();
}

void NodeAgent::set_draining(bool draining) {
    if (draining == draining_) return;
    draining_ = draining;
    log_info(draining ? "node: draining: punchcoord is told this node is full"
                      : "node: draining no more: punchcoord is told the real load");
    // At once: a coordinator that learnt it only at the next heartbeat (ttl/3, 5 s by
    // default) would hand the node out meanwhile, to clients that would get 508.
    if (state_ != NodeAgentState::registered) return;  // the registration will say it
    if (heartbeat_timer_ != 0) timers_.cancel(heartbeat_timer_);
    send_heartbeat();
}

void NodeAgent::handle_reply(const json& reply) {
    const auto id = reply.find("id");
    const auto match = std::find_if(pending_.begin(), pending_.end(), [&](const Pending& p) {
        return id != reply.end() && id->is_number_unsigned() && id->get<std::uint64_t>() == p.id;
    });
    if (match == pending_.end()) {
        ++counters_.bad_lines;
        log_warn("node: punchcoord sent a reply to no request of ours; ignored");
        return;
    }
    const std::string op = match->op;
    pending_.erase(match);
    const bool ok = flag_field(reply, "ok");
    std::string code;
    std::string message;
    if (!ok) {
        const auto error = reply.find("error");
        if (error != reply.end() && error->is_object()) {
            code = text_field(*error, "code");
            message = text_field(*error, "message");
        }
    }
    const punch::Time now = clock_.now();
    if (op == "register") {
        if (!ok) {
            ++counters_.register_refusals;
            close_connection("register refused: " + code + ": " + message +
                                 (code == "unauthorized" ? " (check [node] secret)" : ""),
                             true);
            return;
        }
        const std::uint64_t ttl_ms = count_field(reply, "ttl_ms", 15000);
        // Within punchcoord's own range (--node-ttl-ms 1000..3600000): a ttl of 0 must not
        // make heartbeats run back to back.
        ttl_ = milliseconds(std::clamp<std::uint64_t>(ttl_ms, 1000, 3600000));
        node_id_ = count_field(reply, "node_id", 0);
        ++counters_.registrations;
        backoff_ = punch::Time{0};
        state_ = NodeAgentState::registered;
        log_info("node: registered with punchcoord " + config_.coordinator + " as node " +
                 std::to_string(*node_id_) + " (sfu " + address_text(*public_address_) +
                 ", nat " + nat_type_ + ", ttl " + std::to_string(ttl_ms) + " ms)");
        // A drain (or an undrain) while the register was on its way: say it now.
        if (reported_draining_ != draining_) {
            send_heartbeat();
            return;
        }
    } else if (op == "heartbeat") {
        if (!ok && code == "not_found") {
            // Expired before this heartbeat arrived (docs/protocol.md: register again).
            ++counters_.expiries;
            log_warn("node: punchcoord no longer lists this node (" + message +
                     "); registering again");
            node_id_.reset();
            send_register();
            return;
        }
        if (ok)
            ++counters_.heartbeats;
        else
            log_warn("node: heartbeat refused: " + code + ": " + message);
    } else {
        return;
    }
    if (state_ != NodeAgentState::registered) return;
    // A third of the ttl: two heartbeats may be lost before the coordinator forgets us.
    if (heartbeat_timer_ != 0) timers_.cancel(heartbeat_timer_);
    heartbeat_timer_ = timers_.schedule(now + ttl_ / 3, [this] { send_heartbeat(); });
}

void NodeAgent::handle_event(const json& event) {
    const json& name = event["event"];
    if (name == "node_expired") {
        ++counters_.expiries;
        log_warn("node: punchcoord expired this node (" + text_field(event, "message") +
                 "); registering again");
        if (heartbeat_timer_ != 0) timers_.cancel(heartbeat_timer_);
        heartbeat_timer_ = 0;
        node_id_.reset();
        send_register();
    } else if (name == "sfu_punch") {
        PunchOrder order;
        std::optional<PunchEventRejection> rejection =
            parse_punch_event(event, unix_now_(), config_.local.family, order);
        if (!rejection && config_.token_secret.empty())
            rejection = PunchEventRejection::no_secret;
        // A draining node answers a new leg's admission 508 (docs/sfu.md, "Draining"): an
        // order the coordinator gave before it heard of the drain opens nothing.
        if (!rejection && draining_) rejection = PunchEventRejection::draining;
        if (rejection) {
            ++counters_.punch_events_rejected[static_cast<std::size_t>(*rejection)];
            log_warn("node: sfu_punch dropped: " + std::string(to_string(*rejection)) + " (" +
                     std::string(help(*rejection)) + ")");
            return;
        }
        ++counters_.punch_events;
        const std::size_t started = puncher_.start(order);
        if (log_enabled(engine::LogLevel::debug))
            log_debug("node: sfu_punch for " + order.username + ": " + std::to_string(started) +
                      " of " + std::to_string(order.addresses.size()) + " address(es)");
    } else if (name == "closing") {
        log_warn("node: punchcoord is closing the connection: " + text_field(event, "message"));
    }
    // Other events: ignored, as docs/protocol.md asks of clients.
}

json NodeAgent::status() const {
    json out = {{"state", std::string(to_string(state_))},
                {"coordinator", config_.coordinator},
                {"node_id", node_id_ ? json(*node_id_) : json(nullptr)},
                {"public_address",
                 public_address_ ? json(address_text(*public_address_)) : json(nullptr)},
                {"nat_type", nat_type_},
                {"region", config_.region},
                {"draining", draining_}};
    if (discovery_report_) {
        const punch::Classification& c = discovery_report_->classification;
        out["discovery"] = {{"mapping", std::string(punch::to_string(c.mapping))},
                            {"filtering", std::string(punch::to_string(c.filtering))},
                            {"elapsed_ms", ms(discovery_report_->elapsed)}};
    }
    const NodeAgentCounters& c = counters_;
    json rejected = json::object();
    for (std::size_t i = 0; i < c.punch_events_rejected.size(); ++i)
        rejected[std::string(to_string(static_cast<PunchEventRejection>(i)))] =
            c.punch_events_rejected[i];
    out["counters"] = {{"connects", c.connects},
                       {"connect_failures", c.connect_failures},
                       {"disconnects", c.disconnects},
                       {"registrations", c.registrations},
                       {"register_refusals", c.register_refusals},
                       {"heartbeats", c.heartbeats},
                       {"expiries", c.expiries},
                       {"request_timeouts", c.request_timeouts},
                       {"bad_lines", c.bad_lines},
                       {"punch_events", c.punch_events},
                       {"punch_events_rejected", std::move(rejected)},
                       {"discovery_runs", c.discovery_runs},
                       {"datagrams_ignored", c.datagrams_ignored}};
    const PunchCounters& p = puncher_.counters();
    out["punch"] = {{"live_targets", puncher_.live_targets()},
                    {"orders", p.orders},
                    {"targets", p.targets},
                    {"targets_refused", p.targets_refused},
                    {"requests_sent", p.requests_sent},
                    {"send_failures", p.send_failures},
                    {"answers", p.answers},
                    {"answers_bad_integrity", p.answers_bad_integrity},
                    {"targets_answered", p.targets_answered},
                    {"targets_unanswered", p.targets_unanswered}};
    return out;
}

}  // namespace control
