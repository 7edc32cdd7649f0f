#include "punch/lifetime.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#include "stun/message.h"

namespace punch {

LifetimeBounds lifetime_bounds(const std::vector<LifetimeTrial>& trials) {
    LifetimeBounds b;
    for (const auto& t : trials) {
        auto& bound = t.alive ? b.alive : b.dead;
        if (!bound || (t.alive ? t.wait > *bound : t.wait < *bound)) bound = t.wait;
    }
    return b;
}

std::vector<Time> next_lifetime_round(const LifetimeSearch& search,
                                      const std::vector<LifetimeTrial>& trials) {
    std::vector<Time> waits;
    if (trials.empty()) {
        for (Time t = search.start; t < search.max; t *= 2) waits.push_back(t);
        waits.push_back(search.max);
        return waits;
    }
    const LifetimeBounds b = lifetime_bounds(trials);
    // Round 1 tried max unless a shorter wait died: no dead wait means all lived up to max.
    if (!b.dead) return waits;
    const Time alive = b.alive.value_or(Time{0});
    const Time dead = *b.dead;
    if (alive >= dead || dead - alive <= search.resolution) return waits;
    const auto parts = static_cast<Time::rep>(std::max(search.parallel, 1u)) + 1;
    const Time step = std::max(search.resolution, (dead - alive) / parts);
    for (Time t = alive + step; t < dead && waits.size() < std::max(search.parallel, 1u);
         t += step)
        waits.push_back(t);
    return waits;
}

namespace {

// One trial: its own socket X and the wait before Y speaks for it.
struct Trial {
    Time wait{0};
    UdpSocket x;
    std::unique_ptr<StunClient> client;
    std::uint16_t mapped_port = 0;
    std::optional<stun::TransactionId> y_request;
    TimerId timer = 0;
    bool open = false;
};

// Runs the rounds; lives on run_lifetime()'s stack while the loop runs.
class Lifetime {
public:
    Lifetime(EventLoop& loop, const LifetimeConfig& config, LifetimeReport& report)
        : loop_(loop), config_(config), report_(report) {}
    Lifetime(const Lifetime&) = delete;
    Lifetime& operator=(const Lifetime&) = delete;
    // The loop outlives the search: its callbacks into these sockets and timers go with it.
    ~Lifetime() {
        for (auto& t : trials_) close(*t);
        if (y_client_) y_client_->cancel_all();
        if (y_.is_open()) loop_.unwatch(y_);
        loop_.cancel(next_round_);
    }

    std::string start();
    [[nodiscard]] bool done() const { return over_; }
    void finish() { report_.elapsed = loop_.now() - started_; }

private:
    void start_round();
    void on_x_answer(Trial& t, const BindingResult& r);
    void send_y(Trial& t);
    void on_y_result(Trial& t, const BindingResult& r);
    void on_x_readable(Trial& t);
    void end_trial(Trial& t, bool alive);
    void close(Trial& t);
    void fail(std::string why);

    EventLoop& loop_;
    const LifetimeConfig& config_;
    LifetimeReport& report_;
    UdpSocket y_;
    std::unique_ptr<StunClient> y_client_;
    // Every round's trials, kept until the end: a trial ends inside its own socket's callback.
    std::vector<std::unique_ptr<Trial>> trials_;
    std::size_t open_trials_ = 0;
    TimerId next_round_ = 0;
    Time started_{0};
    bool over_ = false;
};

stun::Address any_address(stun::AddressFamily family) {
    stun::Address a;
    a.family = family;
    return a;
}

std::string Lifetime::start() {
    const LifetimeSearch& s = config_.search;
    if (s.start <= Time{0} || s.resolution <= Time{0} || s.max < s.start)
        return "the lifetime search needs 0 < start <= max and a positive resolution";
    started_ = loop_.now();
    if (auto e = y_.open(any_address(config_.server.family)); !e.empty())
        return "lifetime socket: " + e;
    y_client_ = std::make_unique<StunClient>(loop_.clock(), loop_.timers(), y_, config_.policy);
    if (auto e = loop_.watch(y_, [this] {
            std::array<std::byte, 2048> buffer;
            stun::Address from;
            for (long n; (n = y_.receive_from(buffer, from)) >= 0;)
                y_client_->on_datagram(
                    from, std::span<const std::byte>(buffer).first(static_cast<std::size_t>(n)));
        });
        !e.empty())
        return "lifetime socket: " + e;
    start_round();
    return {};
}

void Lifetime::start_round() {
    next_round_ = 0;
    const auto waits = next_lifetime_round(config_.search, report_.trials);
    if (waits.empty()) {
        over_ = true;
        return;
    }
    ++report_.rounds;
    for (const Time wait : waits) {
        auto& t = *trials_.emplace_back(std::make_unique<Trial>());
        t.wait = wait;
        if (auto e = t.x.open(any_address(config_.server.family)); !e.empty())
            return fail("lifetime trial socket: " + e);
        t.client =
            std::make_unique<StunClient>(loop_.clock(), loop_.timers(), t.x, config_.policy);
        if (auto e = loop_.watch(t.x, [this, &t] { on_x_readable(t); }); !e.empty())
            return fail("lifetime trial socket: " + e);
        t.open = true;
        ++open_trials_;
        const auto id = t.client->start_binding(config_.server, 0,
                                                [this, &t](const BindingResult& r) {
                                                    on_x_answer(t, r);
                                                });
        if (!id) return fail("no random transaction ID (the system's random generator failed)");
    }
}

void Lifetime::on_x_answer(Trial& t, const BindingResult& r) {
    if (r.status != TransactionStatus::success)
        return fail("the server did not answer the trial socket's Binding request (" +
                    std::string(to_string(r.status)) + ")");
    // The wait runs from the answer: the last packet that refreshed X's mapping. X sends
    // nothing more; its transaction is over, so no retransmission can refresh it either.
    t.mapped_port = r.mapped.port;
    t.timer = loop_.after(t.wait, [this, &t] { send_y(t); });
}

void Lifetime::send_y(Trial& t) {
    t.timer = 0;
    t.y_request = y_client_->start_binding(config_.server, 0, t.mapped_port,
                                           [this, &t](const BindingResult& r) {
                                               t.y_request.reset();
                                               on_y_result(t, r);
                                           });
    if (!t.y_request) fail("no random transaction ID (the system's random generator failed)");
}

void Lifetime::on_y_result(Trial& t, const BindingResult& r) {
    switch (r.status) {
    case TransactionStatus::timeout:
    case TransactionStatus::send_failed:
        // Unheard at X for the whole schedule: the NAT no longer had X's mapping.
        return end_trial(t, false);
    case TransactionStatus::success:
        return fail("the server answered the RESPONSE-PORT request to its own source port: it "
                    "does not honour RESPONSE-PORT (RFC 5780 §7.5); measure against an RFC "
                    "5780 server");
    case TransactionStatus::error_response:
        return fail("the server refused the RESPONSE-PORT request with " +
                    std::to_string(r.error_code) + " " + r.error_reason +
                    " (RFC 5780 §7.5); measure against an RFC 5780 server");
    }
}

void Lifetime::on_x_readable(Trial& t) {
    std::array<std::byte, 2048> buffer;
    stun::Address from;
    for (long n; t.open && (n = t.x.receive_from(buffer, from)) >= 0;) {
        const auto datagram = std::span<const std::byte>(buffer).first(static_cast<std::size_t>(n));
        stun::Message m;
        if (t.y_request && stun::Message::parse(datagram, m) == stun::ParseError::ok &&
            m.is(stun::Method::binding, stun::MessageClass::success_response) &&
            std::memcmp(m.transaction_id().data(), t.y_request->data(), t.y_request->size()) ==
                0) {
            // Y's request, answered to X's mapping: it was alive after the wait.
            y_client_->cancel(*t.y_request);
            t.y_request.reset();
            end_trial(t, true);
            return;
        }
        // X's own answer (or a stray datagram, which its client counts and ignores).
        t.client->on_datagram(from, datagram);
    }
}

void Lifetime::end_trial(Trial& t, bool alive) {
    report_.trials.push_back({t.wait, alive});
    report_.bounds = lifetime_bounds(report_.trials);
    close(t);
    // A longer wait than a dead one would die too: the round need not wait for it.
    if (!alive)
        for (auto& other : trials_)
            if (other->open && other->wait > t.wait) close(*other);
    // Next round from a timer: this may run inside a trial socket's callback.
    if (open_trials_ == 0 && !over_)
        next_round_ = loop_.after(Time{0}, [this] { start_round(); });
}

void Lifetime::close(Trial& t) {
    if (!t.open) return;
    t.open = false;
    --open_trials_;
    loop_.cancel(t.timer);
    t.timer = 0;
    if (t.y_request) y_client_->cancel(*t.y_request);
    t.y_request.reset();
    if (t.client) t.client->cancel_all();
    loop_.unwatch(t.x);
    t.x.close();
}

void Lifetime::fail(std::string why) {
    report_.error = std::move(why);
    for (auto& t : trials_) close(*t);
    over_ = true;
}

}  // namespace

std::string run_lifetime(EventLoop& loop, const LifetimeConfig& config, LifetimeReport& report) {
    report = LifetimeReport{};
    Lifetime search(loop, config, report);
    if (auto error = search.start(); !error.empty()) return error;
    loop.run_until([&search] { return search.done(); });
    search.finish();
    return {};
}

}  // namespace punch
