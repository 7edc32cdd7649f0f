#include "punch/probe.h"

#include <cstring>
#include <memory>

#include "stun/constants.h"

namespace punch {

namespace {

// The two sockets of a probe, each with its client and its receive path.
struct Leg {
    UdpSocket own;
    UdpSocket* socket = &own;  // the caller's, or `own`
    std::unique_ptr<StunClient> client;
};

TestResult test_result(const BindingResult& r) {
    TestResult t;
    switch (r.status) {
    case TransactionStatus::success: t.outcome = TestOutcome::success; break;
    case TransactionStatus::error_response: t.outcome = TestOutcome::error_response; break;
    // A request the kernel refused never reached the NAT: as good as lost.
    case TransactionStatus::timeout:
    case TransactionStatus::send_failed: t.outcome = TestOutcome::timeout; break;
    }
    t.mapped = r.mapped;
    t.from = r.from;
    t.other_address = r.other_address;
    return t;
}

stun::Address any_address(stun::AddressFamily family) {
    stun::Address a;
    a.family = family;
    return a;
}

// Runs the probe's steps; lives on run_probe()'s stack while the loop runs.
class Probe {
public:
    Probe(EventLoop& loop, const ProbeConfig& config, ProbeReport& report)
        : loop_(loop), config_(config), report_(report) {}
    Probe(const Probe&) = delete;
    Probe& operator=(const Probe&) = delete;
    // The loop outlives the probe: its callbacks into these sockets go with it.
    ~Probe() {
        loop_.unwatch(*mapping_.socket);
        loop_.unwatch(*filtering_.socket);
    }

    std::string start();
    [[nodiscard]] bool done() const {
        return mapping_.client->pending() == 0 && filtering_.client->pending() == 0;
    }
    void finish();

private:
    std::string open(Leg& leg, stun::AddressFamily family, bool watch_hairpin);
    void on_readable(Leg& leg, bool watch_hairpin);
    void on_discovery(std::size_t index, const BindingResult& result);
    void classify_with(std::size_t index);

    EventLoop& loop_;
    const ProbeConfig& config_;
    ProbeReport& report_;
    Leg mapping_;
    Leg filtering_;
    Time started_{0};
    std::optional<stun::TransactionId> hairpin_id_;
};

std::string Probe::open(Leg& leg, stun::AddressFamily family, bool watch_hairpin) {
    if (!leg.socket->is_open())
        if (auto error = leg.socket->open(any_address(family)); !error.empty()) return error;
    leg.client = std::make_unique<StunClient>(loop_.clock(), loop_.timers(), *leg.socket,
                                              config_.policy);
    return loop_.watch(*leg.socket, [this, &leg, watch_hairpin] { on_readable(leg, watch_hairpin); });
}

void Probe::on_readable(Leg& leg, bool watch_hairpin) {
    std::array<std::byte, 2048> buffer;
    stun::Address from;
    for (long n; (n = leg.socket->receive_from(buffer, from)) >= 0;) {
        const auto datagram = std::span<const std::byte>(buffer).first(static_cast<std::size_t>(n));
        if (leg.client->on_datagram(from, datagram) != DatagramVerdict::not_response) continue;
        if (!watch_hairpin || !hairpin_id_) continue;
        // RFC 5780 §4.5: our own request, sent from the filtering socket to the mapping
        // socket's mapped address, came back through the NAT: it hairpins.
        stun::Message m;
        if (stun::Message::parse(datagram, m) != stun::ParseError::ok) continue;
        if (!m.is(stun::Method::binding, stun::MessageClass::request)) continue;
        if (std::memcmp(m.transaction_id().data(), hairpin_id_->data(), hairpin_id_->size()) != 0)
            continue;
        report_.tests.hairpin = HairpinOutcome::received;
        filtering_.client->cancel(*hairpin_id_);
        hairpin_id_.reset();
    }
}

std::string Probe::start() {
    if (config_.servers.empty()) return "no STUN server given: add --stun HOST:PORT";
    const auto family = config_.servers.front().address.family;
    for (const auto& s : config_.servers)
        if (s.address.family != family)
            return "--stun " + s.name + ": every server must be of one address family (the "
                   "probe's socket has one); give IPv4 servers or IPv6 servers";
    if (config_.mapping_socket) {
        if (!config_.mapping_socket->is_open() ||
            config_.mapping_socket->local_address().family != family)
            return "the call leg's socket must be open and of the servers' address family";
        mapping_.socket = config_.mapping_socket;
    }
    if (auto e = open(mapping_, family, true); !e.empty()) return "mapping socket: " + e;
    if (auto e = open(filtering_, family, false); !e.empty()) return "filtering socket: " + e;
    report_.servers.clear();
    for (const auto& s : config_.servers) report_.servers.push_back({s, {}});
    started_ = loop_.now();
    for (std::size_t i = 0; i < config_.servers.size(); ++i) {
        const auto id = mapping_.client->start_binding(
            config_.servers[i].address, 0,
            [this, i](const BindingResult& r) { on_discovery(i, r); });
        if (!id) return "no random transaction ID (the system's random generator failed)";
    }
    return {};
}

void Probe::on_discovery(std::size_t index, const BindingResult& result) {
    report_.servers[index].result = result;
    if (result.status != TransactionStatus::success) return;
    // Callbacks run in arrival order: the first success is the fastest valid answer.
    if (!report_.nearest) {
        report_.nearest = index;
        report_.reflexive = result.mapped;
    }
    if (!report_.classifier && result.other_address) classify_with(index);
}

void Probe::classify_with(std::size_t index) {
    report_.classifier = index;
    const BindingResult& first = report_.servers[index].result;
    ProbeResults& tests = report_.tests;
    tests.server = first.server;
    tests.mapping1 = test_result(first);
    stun::Address local = mapping_.socket->local_address();
    if (stun::Address routed; route_source(first.server, routed)) {
        routed.port = local.port;
        local = routed;
    }
    tests.local = local;
    report_.local = local;

    const stun::Address other = *first.other_address;
    if (!(first.mapped == local)) {
        stun::Address alternate_ip = other;
        alternate_ip.port = first.server.port;
        mapping_.client->start_binding(alternate_ip, 0, [this](const BindingResult& r) {
            report_.tests.mapping2 = test_result(r);
        });
        mapping_.client->start_binding(other, 0, [this](const BindingResult& r) {
            report_.tests.mapping3 = test_result(r);
        });
    }
    const auto filtering_test = [this](TestResult ProbeResults::*slot) {
        return [this, slot](const BindingResult& r) { report_.tests.*slot = test_result(r); };
    };
    filtering_.client->start_binding(first.server, 0, filtering_test(&ProbeResults::filtering1));
    filtering_.client->start_binding(first.server, stun::change_ip | stun::change_port,
                                     filtering_test(&ProbeResults::filtering2));
    filtering_.client->start_binding(first.server, stun::change_port,
                                     filtering_test(&ProbeResults::filtering3));
    hairpin_id_ = filtering_.client->start_binding(first.mapped, 0, [this](const BindingResult&) {
        // Its "response" never comes: the mapping socket sees the request, or nobody does.
        report_.tests.hairpin = HairpinOutcome::timeout;
        hairpin_id_.reset();
    });
}

void Probe::finish() {
    report_.elapsed = loop_.now() - started_;
    report_.classification = classify(report_.tests);
    if (!report_.classifier) {
        // Nobody offered OTHER-ADDRESS: mapping test I is still the nearest's answer (and a
        // timeout everywhere is "blocked").
        bool any_answer = false;
        for (const auto& s : report_.servers)
            any_answer |= s.result.status == TransactionStatus::success ||
                          s.result.status == TransactionStatus::error_response;
        if (!any_answer) report_.classification.type = NatType::blocked;
    }
    for (std::size_t i = 0; i < report_.rejected.size(); ++i) {
        const auto why = static_cast<ResponseRejection>(i);
        report_.rejected[i] = mapping_.client->rejected(why) + filtering_.client->rejected(why);
    }
}

}  // namespace

std::string run_probe(EventLoop& loop, const ProbeConfig& config, ProbeReport& report) {
    report = ProbeReport{};
    Probe probe(loop, config, report);
    if (auto error = probe.start(); !error.empty()) return error;
    loop.run_until([&probe] { return probe.done(); });
    probe.finish();
    return {};
}

}  // namespace punch
