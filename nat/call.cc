#include "punch/call.h"

#include <array>
#include <memory>
#include <utility>

#include <nlohmann/json.hpp>

#include "punch/candidates.h"

namespace punch {

std::string_view to_string(Rung rung) noexcept {
    switch (rung) {
    case Rung::none: return "none";
    case Rung::p2p: return "p2p";
    case Rung::sfu: return "sfu";
    case Rung::relay: return "relay";
    }
    return "?";
}

namespace {

std::string text(const stun::Address& a) {
    char buffer[48];
    return {buffer, a.format(buffer)};
}

std::string status_text(const CoordStatus& s) {
    return s.code + (s.message.empty() ? "" : ": " + s.message) +
           (s.limit.empty() ? "" : " (" + s.limit + ")");
}

// STUN's first two bits are zero (RFC 8489 §5); RFC 7983 §7.
bool looks_like_stun(std::span<const std::byte> d) {
    return !d.empty() && static_cast<std::uint8_t>(d[0]) < 4;
}

constexpr Time monitor_every = std::chrono::milliseconds(100);

}  // namespace

class Call::Impl {
public:
    Impl(EventLoop& loop, CallConfig config) : loop_(loop), config_(std::move(config)) {}
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
    ~Impl() {
        cancel_timers();
        if (watching_) loop_.unwatch(socket_);
    }

    std::string start(std::function<void(const CallReport&)> done);
    void hang_up() {
        if (phase_ == Phase::media) end_media();
        else if (phase_ != Phase::ending && phase_ != Phase::done) fail("hung up");
    }
    bool send_payload(std::span<const std::byte> payload);
    std::function<void(std::span<const std::byte>)> payload_callback;

private:
    enum class Phase : std::uint8_t {
        setup, peer_wait, punching, sfu_setup, relay_setup, media, ending, done
    };

    // Steps: begin_step() opens one, end_step() closes the last open one of that name.
    void begin_step(const std::string& name) {
        report_.steps.push_back({name, "", loop_.now() - started_, Time{0}});
    }
    void end_step(const std::string& name, const std::string& outcome) {
        for (auto it = report_.steps.rbegin(); it != report_.steps.rend(); ++it)
            if (it->name == name && it->outcome.empty()) {
                it->outcome = outcome;
                it->elapsed = loop_.now() - started_ - it->started;
                return;
            }
    }

    void fail(const std::string& why);
    void finish();
    void cancel_timers();

    void on_peer(const PeerInfo& peer);
    void start_with_peer();
    void start_punching();
    void punch_flush(const std::vector<Outgoing>& out);
    void punch_rearm();
    void punch_finished();

    void go_sfu(const std::string& why, bool tell_peer);
    void on_sfu_reply(const SfuReply& reply);
    void sfu_flush(const std::vector<Outgoing>& out);
    void sfu_progress();
    void sfu_stop();
    void on_peer_sfu(std::uint64_t node_id, bool up);
    void on_signal(const std::string& data_json);

    void go_relay(const std::string& why, bool tell_peer);
    void on_relay_candidate(const stun::Address& relayed);
    void relay_ready();

    void path_up(Rung rung);
    void media_flush(MediaSession::Frames frames);
    void media_rearm();
    void monitor();
    void end_media();
    void send_media(std::span<const std::byte> frame);
    void on_media(const stun::Address& from, std::span<const std::byte> frame, bool via_turn);
    [[nodiscard]] std::uint32_t call_id() const;

    void readable();

    EventLoop& loop_;
    CallConfig config_;
    std::function<void(const CallReport&)> done_;
    CallReport report_;
    Phase phase_ = Phase::setup;
    Time started_{0};

    UdpSocket socket_;
    bool watching_ = false;
    std::unique_ptr<CoordClient> coord_;
    JoinReply join_;
    PeerInfo peer_;
    bool joined_ = false;  // the join's answer is in: our credentials and the relay are known
    bool have_peer_ = false;
    bool controlling_ = false;  // towards this peer (the coordinator decides: the first to join)
    Time peer_at_{0};

    std::unique_ptr<PunchSession> punch_;
    std::optional<TimerId> punch_timer_;
    bool punch_finished_ = false;

    std::unique_ptr<SfuRung> sfu_;
    std::optional<TimerId> sfu_timer_;
    bool sfu_asked_ = false;     // the sfu op went out (once a call)
    bool sfu_stopped_ = false;   // the call left the rung: no more admissions or keepalives
    std::optional<stun::Address> sfu_node_;  // the chosen node, where media goes
    // The peer's word on its legs, kept until our rung exists (its reply may come later).
    std::vector<std::pair<std::uint64_t, bool>> early_peer_legs_;

    std::unique_ptr<TurnClient> turn_;
    std::optional<stun::Address> relay_server_;
    std::optional<stun::Address> peer_relayed_;  // the other side allocated: send here
    std::optional<stun::Address> relay_peer_;    // we allocated: the peer, as the relay sees it
    bool relay_pending_ = false;
    std::optional<TimerId> relay_timer_;
    // The media gap of a move down the ladder: from the last frame on the old path (gap_from_)
    // to the first on the relay.
    Time last_frame_at_{0};
    std::optional<Time> gap_from_;
    std::string relay_error_;  // the last CreatePermission or ChannelBind failure
    bool streaming_ = false;   // synthetic media started (on the first frame from the peer)

    Rung rung_ = Rung::none;
    std::optional<stun::Address> direct_;  // P2P: the punched address
    std::unique_ptr<MediaSession> media_;
    std::optional<TimerId> media_timer_;
    std::optional<TimerId> monitor_timer_;
    std::optional<TimerId> phase_timer_;  // peer wait, media duration, bye wait
};

// ---------------------------------------------------------------------------------------------

std::string Call::Impl::start(std::function<void(const CallReport&)> done) {
    done_ = std::move(done);
    started_ = loop_.now();
    // The coordinator first: it names the STUN and relay servers.
    begin_step("coordinator");
    coord_ = std::make_unique<CoordClient>(loop_, CoordClientConfig{config_.coordinator});
    std::string coord_error;
    bool coord_done = false;
    HelloReply hello;
    coord_->connect([&](const std::string& error) {
        if (!error.empty()) {
            coord_error = error;
            coord_done = true;
            return;
        }
        coord_->hello([&](const HelloReply& reply) {
            hello = reply;
            if (!reply.status.ok) coord_error = "hello: " + status_text(reply.status);
            coord_done = true;
        });
    });
    loop_.run_until([&] { return coord_done; });
    if (!coord_done) coord_error = "no answer";
    end_step("coordinator", coord_error.empty() ? "ok" : coord_error);
    if (!coord_error.empty()) return "coordinator " + config_.coordinator + ": " + coord_error;

    // Discovery and classification from the call's own socket.
    begin_step("probe");
    ProbeConfig probe;
    probe.policy = config_.probe_policy;
    probe.servers = config_.stun_servers;
    if (probe.servers.empty())
        for (const auto& name : hello.stun_servers) {
            ProbeServer server{name, {}};
            if (auto error = resolve_host_port(name, server.address); !error.empty()) {
                end_step("probe", error);
                return "the coordinator's STUN server " + error;
            }
            probe.servers.push_back(server);
        }
    if (probe.servers.empty()) {
        end_step("probe", "no STUN server");
        return "the coordinator names no STUN server (give one with --stun HOST:PORT)";
    }
    // The leg's socket: of the servers' family, the kernel's port.
    stun::Address any;
    any.family = probe.servers.front().address.family;
    if (auto error = socket_.open(any); !error.empty()) {
        end_step("probe", error);
        return "the call's socket: " + error;
    }
    probe.mapping_socket = &socket_;
    ProbeReport probed;
    if (auto error = run_probe(loop_, probe, probed); !error.empty()) {
        end_step("probe", error);
        return "probe: " + error;
    }
    if (!probed.nearest) {
        end_step("probe", "no STUN server answered");
        return "probe: no STUN server answered (blocked, or all down)";
    }
    end_step("probe", "ok");
    report_.reflexive = probed.reflexive;
    report_.local_nat = probed.classification.type;
    report_.local = socket_.local_address();
    if (stun::Address routed; route_source(probed.reflexive, routed) ||
                              route_source(probe.servers[*probed.nearest].address, routed)) {
        routed.port = report_.local.port;
        report_.local = routed;
    }

    // The probe has let go of the socket; from here the call reads it (the peer may come with
    // the join's answer, and punching start at once).
    if (auto error = loop_.watch(socket_, [this] { readable(); }); !error.empty())
        return "the call's socket: " + error;
    watching_ = true;

    // Join: our candidates go to the peer; the credentials come back.
    begin_step("join");
    JoinRequest request;
    request.room = config_.room;
    request.name = config_.name;
    request.region = config_.region;
    request.nat_type = std::string(to_string(report_.local_nat));
    request.candidates.push_back({"host", report_.local});
    if (!(report_.reflexive == report_.local))
        request.candidates.push_back({"srflx", report_.reflexive});
    coord_->on_peer([this](const PeerInfo& peer) { on_peer(peer); });
    coord_->on_candidates([this](const std::string& room, const std::string& from,
                                 const std::vector<CoordCandidate>& candidates) {
        if (room != config_.room || !have_peer_ || from != peer_.name) return;
        for (const auto& c : candidates)
            if (c.type == "relay") on_relay_candidate(c.address);
    });
    coord_->on_signal([this](const std::string& room, const std::string& from,
                             const std::string& data_json) {
        if (room != config_.room || !have_peer_ || from != peer_.name) return;
        on_signal(data_json);
    });
    coord_->on_closed([this](const std::string& why) {
        // Signalling is gone; a call with media keeps it (the path needs no coordinator).
        if (phase_ != Phase::media && phase_ != Phase::ending && phase_ != Phase::done)
            fail("the coordinator closed the connection: " + why);
    });
    std::string join_error = "no answer";
    coord_->join(request, [&, family = any.family](const JoinReply& reply) {
        join_ = reply;
        join_error = reply.status.ok ? "" : status_text(reply.status);
        joined_ = true;
        for (const auto& name : join_.relay_servers) {
            stun::Address relay;
            if (resolve_host_port(name, relay).empty() && relay.family == family) {
                relay_server_ = relay;
                break;
            }
        }
    });
    loop_.run_until([&] { return joined_; });
    end_step("join", join_error.empty() ? "ok" : join_error);
    if (!join_error.empty()) return "join " + config_.room + ": " + join_error;

    if (have_peer_) {
        // The peer event came in the same read as the join's answer: the call starts now that
        // our credentials are known.
        start_with_peer();
    } else {
        phase_ = Phase::peer_wait;
        begin_step("peer");
        phase_timer_ = loop_.after(config_.peer_wait, [this] {
            phase_timer_.reset();
            if (phase_ == Phase::peer_wait) fail("no peer joined the room in time");
        });
    }
    return {};
}

void Call::Impl::fail(const std::string& why) {
    if (phase_ == Phase::done) return;
    report_.error = why;
    report_.connected = false;
    finish();
}

void Call::Impl::cancel_timers() {
    for (auto* t : {&punch_timer_, &sfu_timer_, &relay_timer_, &media_timer_, &monitor_timer_,
                    &phase_timer_})
        if (*t) {
            loop_.cancel(**t);
            t->reset();
        }
}

void Call::Impl::finish() {
    if (phase_ == Phase::done) return;
    phase_ = Phase::done;
    cancel_timers();
    report_.rung = rung_;
    if (media_) report_.media = media_->report();
    if (punch_) report_.punch_report = punch_->report();
    if (sfu_) {
        report_.sfu_legs = sfu_->legs();
        report_.sfu_report = sfu_->report();
        for (std::size_t i = 0; i < report_.sfu_drops.size(); ++i)
            report_.sfu_drops[i] = sfu_->drops(static_cast<SfuLegDrop>(i));
    }
    if (turn_) {
        report_.turn = turn_->counters();
        for (std::size_t i = 0; i < report_.turn_drops.size(); ++i)
            report_.turn_drops[i] = turn_->drops(static_cast<TurnDrop>(i));
        turn_->release();
    }
    // The outcome report, then the caller's; the coordinator's answer is not awaited (the line
    // is queued before the caller tears the loop down, and a lost report loses no call).
    if (coord_ && have_peer_) {
        OutcomeReport outcome;
        outcome.room = config_.room;
        outcome.rung = report_.connected ? std::string(to_string(report_.first_rung)) : "failed";
        if (report_.time_to_connect)
            outcome.time_to_connect_ms =
                static_cast<std::uint64_t>(report_.time_to_connect->count() / 1000);
        outcome.local_nat = std::string(to_string(report_.local_nat));
        outcome.remote_nat = report_.remote_nat;
        coord_->report(outcome);
    }
    if (done_) {
        auto done = std::move(done_);
        done(report_);
    }
}

// ---------------------------------------------------------------------------------------------
// The peer and punching

void Call::Impl::on_peer(const PeerInfo& peer) {
    if (have_peer_) return;  // a call has one peer; later joiners are the coordinator's business
    have_peer_ = true;
    peer_ = peer;
    peer_at_ = loop_.now();
    controlling_ = peer.controlling;
    report_.controlling = controlling_;
    report_.peer_name = peer.name;
    report_.remote_nat = peer.nat_type;
    if (joined_) start_with_peer();  // else start() does, once the join's answer is in
}

void Call::Impl::start_with_peer() {
    // Once: the join's answer and the peer event can come in one read, and then both on_peer()
    // (the answer's callback ran first) and start() call this.
    if (phase_ != Phase::setup && phase_ != Phase::peer_wait) return;
    if (phase_ == Phase::peer_wait) {
        end_step("peer", "ok");
        if (phase_timer_) {
            loop_.cancel(*phase_timer_);
            phase_timer_.reset();
        }
    }
    if (config_.force == ForceRung::relay) {
        go_relay("--force relay", true);
        return;
    }
    if (config_.force == ForceRung::sfu) {
        go_sfu("--force sfu", true);
        return;
    }
    start_punching();
}

void Call::Impl::start_punching() {
    phase_ = Phase::punching;
    begin_step("punch");
    PunchConfig pc = config_.punch;
    pc.controlling = controlling_;
    PunchCredentials credentials{join_.ufrag, join_.password, peer_.ufrag, peer_.password};
    const std::vector<stun::Address> remote = order_candidates(report_.local, peer_.candidates);
    try {
        punch_ = std::make_unique<PunchSession>(pc, credentials, remote);
    } catch (const std::invalid_argument& e) {
        end_step("punch", e.what());
        fail(std::string("punch: ") + e.what());
        return;
    }
    punch_flush(punch_->start(loop_.now()));
    punch_rearm();
}

void Call::Impl::punch_flush(const std::vector<Outgoing>& out) {
    for (const auto& o : out) socket_.send_to(o.to, o.bytes);
}

void Call::Impl::punch_rearm() {
    if (punch_timer_) {
        loop_.cancel(*punch_timer_);
        punch_timer_.reset();
    }
    if (!punch_finished_ && punch_->state() != PunchState::checking) {
        punch_finished();
        return;
    }
    if (auto at = punch_->next_timer())
        punch_timer_ = loop_.at(*at, [this] {
            punch_timer_.reset();
            punch_flush(punch_->on_timer(loop_.now()));
            punch_rearm();
        });
}

void Call::Impl::punch_finished() {
    punch_finished_ = true;
    if (phase_ != Phase::punching) return;  // the relay candidate came first
    if (punch_->state() == PunchState::connected) {
        end_step("punch", "ok");
        direct_ = punch_->selected();
        path_up(Rung::p2p);
        return;
    }
    end_step("punch", "no ACK within the preset time");
    if (config_.force == ForceRung::p2p) {
        fail("punching failed and --force p2p forbids the relay");
        return;
    }
    go_sfu("punching failed", false);
}

// The peer's signals: {"fallback":"relay"} (go_relay()), {"kind":"sfu_start"} (it skipped
// punching: --force sfu), {"kind":"sfu_up"|"sfu_failed","node_id":N} (its SFU legs).
void Call::Impl::on_signal(const std::string& data_json) {
    nlohmann::json data;
    try {
        data = nlohmann::json::parse(data_json);
    } catch (const nlohmann::json::exception&) {
        return;
    }
    if (!data.is_object()) return;
    const auto text = [&](const char* key) {
        const auto it = data.find(key);
        return it != data.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    if (text("fallback") == "relay") {
        go_relay("the peer moved to the relay", false);
        return;
    }
    const std::string kind = text("kind");
    if (kind == "sfu_start") {
        if (phase_ == Phase::punching) go_sfu("the peer moved to the SFU rung", false);
        return;
    }
    if (kind != "sfu_up" && kind != "sfu_failed") return;
    const auto node = data.find("node_id");
    if (node == data.end() || !node->is_number_unsigned()) return;
    on_peer_sfu(node->get<std::uint64_t>(), kind == "sfu_up");
}

// ---------------------------------------------------------------------------------------------
// The SFU rung (docs/sfu.md, "The client's part")

void Call::Impl::go_sfu(const std::string& why, bool tell_peer) {
    if (sfu_asked_ || relay_pending_ || rung_ != Rung::none || phase_ == Phase::done ||
        phase_ == Phase::ending || !have_peer_)
        return;
    sfu_asked_ = true;
    if (phase_ == Phase::punching && !punch_finished_) end_step("punch", "abandoned: " + why);
    phase_ = Phase::sfu_setup;
    begin_step("sfu");
    if (tell_peer) coord_->signal(config_.room, peer_.name, R"({"kind":"sfu_start"})");
    coord_->sfu(config_.room, {}, [this](const SfuReply& reply) { on_sfu_reply(reply); });
}

void Call::Impl::on_sfu_reply(const SfuReply& reply) {
    if (phase_ != Phase::sfu_setup) return;  // the call moved on (the peer took the relay)
    const auto skip = [this](const std::string& why) {
        end_step("sfu", why);
        sfu_stopped_ = true;
        go_relay("the SFU rung: " + why, false);  // fails the call under --force sfu
    };
    if (!reply.status.ok) {
        skip("sfu: " + status_text(reply.status));
        return;
    }
    report_.sfu_session = reply.session;
    report_.sfu_dropped = reply.dropped;
    if (reply.candidates.empty()) {
        std::string why = "no SFU node serves both";
        for (const auto& d : reply.dropped)
            why += (&d == &reply.dropped.front() ? " (node " : ", node ") +
                   std::to_string(d.node_id) + ": " + d.reason;
        skip(why + (reply.dropped.empty() ? "" : ")"));
        return;
    }
    SfuRungConfig config = config_.sfu;
    config.race = std::max<std::uint32_t>(reply.race, 1);
    try {
        sfu_ = std::make_unique<SfuRung>(config, reply.username, reply.password,
                                         reply.candidates);
    } catch (const std::invalid_argument& e) {
        skip(e.what());
        return;
    }
    sfu_flush(sfu_->start(loop_.now()));
    for (const auto& [node, up] : early_peer_legs_)
        sfu_flush(sfu_->on_peer_leg(node, up, loop_.now()));
    early_peer_legs_.clear();
    sfu_progress();
}

void Call::Impl::sfu_flush(const std::vector<Outgoing>& out) {
    for (const auto& o : out) socket_.send_to(o.to, o.bytes);
}

void Call::Impl::on_peer_sfu(std::uint64_t node_id, bool up) {
    if (sfu_stopped_) return;
    if (!sfu_) {
        early_peer_legs_.emplace_back(node_id, up);
        // The peer is on the SFU rung while we still punch: it skipped punching (--force
        // sfu) or gave up first; its legs cannot wait for our preset time.
        if (phase_ == Phase::punching) go_sfu("the peer moved to the SFU rung", false);
        return;
    }
    sfu_flush(sfu_->on_peer_leg(node_id, up, loop_.now()));
    sfu_progress();
}

// After every input to the rung: our legs' news to the peer, the rung's outcome, its timer.
void Call::Impl::sfu_progress() {
    if (!sfu_ || sfu_stopped_) return;
    for (const auto& e : sfu_->take_events())
        coord_->signal(config_.room, peer_.name,
                       std::string(R"({"kind":")") + (e.up ? "sfu_up" : "sfu_failed") +
                           R"(","node_id":)" + std::to_string(e.node_id) + "}");
    if (sfu_timer_) {
        loop_.cancel(*sfu_timer_);
        sfu_timer_.reset();
    }
    if (phase_ == Phase::sfu_setup && sfu_->state() != SfuRungState::trying) {
        // One step per candidate tried, with its outcome and timing.
        for (const auto& leg : sfu_->legs()) {
            if (!leg.started) continue;
            const Time end = leg.ended.value_or(loop_.now());
            report_.steps.push_back({"sfu node " + std::to_string(leg.node.node_id),
                                     leg.outcome, *leg.started - started_, end - *leg.started});
        }
        if (sfu_->state() != SfuRungState::up) {
            const std::string why = sfu_->failure();
            end_step("sfu", why);
            sfu_stopped_ = true;
            go_relay("no SFU node serves both (" + why + ")", false);
            return;
        }
        const SfuLegReport& chosen = *sfu_->chosen();
        end_step("sfu", "ok: node " + std::to_string(chosen.node.node_id));
        report_.sfu_node = chosen.node.node_id;
        sfu_node_ = sfu_->media_address();
        path_up(Rung::sfu);
    }
    if (const auto at = sfu_->next_timer())
        sfu_timer_ = loop_.at(*at, [this] {
            sfu_timer_.reset();
            sfu_flush(sfu_->on_timer(loop_.now()));
            sfu_progress();
        });
}

// The call left the rung (the relay took over): no more admissions or keepalives; the node
// expires our leg after its silence.
void Call::Impl::sfu_stop() {
    if (sfu_stopped_) return;
    sfu_stopped_ = true;
    if (sfu_timer_) {
        loop_.cancel(*sfu_timer_);
        sfu_timer_.reset();
    }
}

// ---------------------------------------------------------------------------------------------
// The relay rung

void Call::Impl::go_relay(const std::string& why, bool tell_peer) {
    if (relay_pending_ || rung_ == Rung::relay || phase_ == Phase::done ||
        phase_ == Phase::ending)
        return;
    if (!have_peer_) return;
    if (config_.force == ForceRung::p2p || config_.force == ForceRung::sfu) {
        fail(why + ", and --force " + (config_.force == ForceRung::p2p ? "p2p" : "sfu") +
             " forbids the relay");
        return;
    }
    if (!relay_server_) {
        fail(why + ", and the coordinator named no relay server");
        return;
    }
    relay_pending_ = true;
    sfu_stop();
    if (phase_ == Phase::punching) {
        // The peer gave up first: our own checks stop mattering.
        if (!punch_finished_) end_step("punch", "abandoned: " + why);
        phase_ = Phase::relay_setup;
    } else if (phase_ == Phase::sfu_setup) {
        end_step("sfu", "abandoned: " + why);  // no-op when the rung had ended
        phase_ = Phase::relay_setup;
    } else if (phase_ != Phase::media) {
        phase_ = Phase::relay_setup;
    }
    begin_step("relay");
    if (phase_ == Phase::media) gap_from_ = last_frame_at_;
    if (tell_peer || phase_ == Phase::media)
        coord_->signal(config_.room, peer_.name, R"({"fallback":"relay"})");
    relay_timer_ = loop_.after(config_.relay_timeout, [this] {
        relay_timer_.reset();
        if (rung_ != Rung::relay) {
            const std::string why = "nothing from the peer through the relay in time" +
                                    (relay_error_.empty() ? "" : " (" + relay_error_ + ")");
            end_step("relay", why);
            fail("the relay rung: " + why);
        }
    });
    if (!controlling_) {
        // The controlling side allocates; its relayed address comes as a candidate.
        if (peer_relayed_) on_relay_candidate(*peer_relayed_);
        return;
    }
    TurnConfig tc;
    tc.server = *relay_server_;
    tc.username = join_.turn.username;
    tc.password = join_.turn.password;
    tc.policy = config_.turn_policy;
    turn_ = std::make_unique<TurnClient>(loop_, socket_, tc);
    turn_->on_data([this](const stun::Address& peer, std::span<const std::byte> data) {
        on_media(peer, data, true);
    });
    turn_->on_failure([this](const std::string& why) {
        if (rung_ == Rung::relay) fail("the relay failed: " + why);
    });
    turn_->allocate([this](const TurnAllocation& a) {
        if (a.status != TransactionStatus::success) {
            const std::string why =
                a.status == TransactionStatus::error_response
                    ? std::to_string(a.error_code) + " " + a.error_reason
                    : std::string(to_string(a.status));
            end_step("relay", "Allocate: " + why);
            fail("relay " + text(*relay_server_) + ": Allocate: " + why);
            return;
        }
        report_.relayed = a.relayed;
        // Permission for the peer's public address (RFC 8656 §9: by IP address; a symmetric
        // NAT's port towards the relay is not the one the STUN server saw, and the channel
        // is bound when the peer's first frame shows it). Its host candidates are private
        // addresses unless it has no NAT (then it sent no server-reflexive one).
        // The relayed address goes to the peer only once a permission is installed: its
        // frames to the relay would be dropped before (relay_no_permission), and the first
        // would cost a keepalive interval.
        bool any_srflx = false;
        for (const auto& c : peer_.candidates) any_srflx |= c.type == "srflx";
        auto outstanding = std::make_shared<std::size_t>(0);
        auto permitted = std::make_shared<bool>(false);
        for (const auto& c : peer_.candidates) {
            if (c.type != (any_srflx ? "srflx" : "host")) continue;
            ++*outstanding;
            turn_->add_peer(c.address, [this, outstanding, permitted,
                                        relayed = a.relayed](const std::string& error) {
                if (!error.empty()) relay_error_ = error;
                else *permitted = true;
                if (--*outstanding != 0 || phase_ == Phase::done) return;
                if (*permitted) {
                    coord_->send_candidates(config_.room, {{"relay", relayed}});
                } else {
                    end_step("relay", relay_error_);
                    fail("relay " + text(*relay_server_) + ": " + relay_error_);
                }
            });
        }
        if (*outstanding == 0) {
            end_step("relay", "the peer sent no address to permit");
            fail("relay: the peer sent no server-reflexive or host candidate to permit");
            return;
        }
        // Media starts when the peer's first frame shows where it is (relay_peer_).
    });
}

void Call::Impl::on_relay_candidate(const stun::Address& relayed) {
    peer_relayed_ = relayed;
    if (controlling_ || rung_ == Rung::relay || phase_ == Phase::done) return;
    if (!relay_pending_) {
        // The controlling side moved first (its punching failed, or its path died).
        go_relay("the peer allocated on the relay", false);
        return;
    }
    relay_peer_.reset();
    relay_ready();
}

// The path through the relay carries media: for the side that did not allocate, as soon as the
// relayed address is known (its frames open its NAT towards the relay); for the allocating side,
// when the peer's first frame arrived through it.
void Call::Impl::relay_ready() {
    if (rung_ == Rung::relay) return;
    end_step("relay", "ok");
    if (relay_timer_) {
        loop_.cancel(*relay_timer_);
        relay_timer_.reset();
    }
    path_up(Rung::relay);
}

// ---------------------------------------------------------------------------------------------
// Media

void Call::Impl::path_up(Rung rung) {
    const bool first = rung_ == Rung::none;
    if (report_.first_rung == Rung::none) report_.first_rung = rung;
    rung_ = rung;
    report_.rung = rung;
    relay_pending_ = false;
    report_.remote = rung == Rung::p2p   ? direct_
                     : rung == Rung::sfu ? sfu_node_
                                         : (relay_peer_ ? relay_peer_ : peer_relayed_);
    const Time now = loop_.now();
    if (first) {
        report_.connected = true;
        phase_ = Phase::media;
        begin_step("media");
        MediaConfig mc = config_.media;
        mc.call_id = call_id();
        media_ = std::make_unique<MediaSession>(mc);
        // Pings until the peer answers on this path; the stream starts then (on_media), so that
        // no data frame reaches a peer whose side of the path is not up yet.
        media_flush(media_->start(now, to_string(rung)));
        monitor_timer_ = loop_.after(monitor_every, [this] { monitor(); });
    } else {
        ++report_.fallbacks;
        phase_ = Phase::media;
        media_flush(media_->path_changed(now, to_string(rung)));
    }
    media_rearm();
}

// Both sides derive the same id from what both know: the room and the two ufrags (fresh for
// every call), FNV-1a. Frames of another call on the same socket are dropped (wrong_call).
std::uint32_t Call::Impl::call_id() const {
    std::string key = config_.room + "\n";
    key += std::min(join_.ufrag, peer_.ufrag) + "\n" + std::max(join_.ufrag, peer_.ufrag);
    std::uint32_t h = 2166136261u;
    for (const char c : key) h = (h ^ static_cast<std::uint8_t>(c)) * 16777619u;
    return h;
}

void Call::Impl::send_media(std::span<const std::byte> frame) {
    if (rung_ == Rung::p2p && direct_) {
        socket_.send_to(*direct_, frame);
    } else if (rung_ == Rung::sfu && sfu_node_) {
        // docs/sfu.md, "Forwarding": the node sends every non-STUN datagram of our leg to the
        // other legs of the session.
        socket_.send_to(*sfu_node_, frame);
    } else if (rung_ == Rung::relay) {
        if (turn_ && relay_peer_) turn_->send(*relay_peer_, frame);
        else if (peer_relayed_ && !controlling_) socket_.send_to(*peer_relayed_, frame);
    }
}

void Call::Impl::media_flush(MediaSession::Frames frames) {
    for (const auto& f : frames) send_media(f);
}

void Call::Impl::media_rearm() {
    if (media_timer_) {
        loop_.cancel(*media_timer_);
        media_timer_.reset();
    }
    if (!media_ || phase_ == Phase::done) return;
    if (phase_ == Phase::ending && media_->state() == MediaState::closed) {
        finish();
        return;
    }
    if (auto at = media_->next_timer())
        media_timer_ = loop_.at(*at, [this] {
            media_timer_.reset();
            media_flush(media_->on_timer(loop_.now()));
            media_rearm();
        });
}

void Call::Impl::on_media(const stun::Address& from, std::span<const std::byte> frame,
                          bool via_turn) {
    if (via_turn && controlling_ && (relay_pending_ || rung_ == Rung::relay) &&
        !(relay_peer_ && *relay_peer_ == from)) {
        // Through our allocation, from where the peer is as the relay sees it (a symmetric
        // NAT's port towards the relay is its own): media goes back there, on a channel bound
        // to it; the path is up when the channel is.
        relay_peer_ = from;
        turn_->add_peer(from, [this, from](const std::string& error) {
            if (!error.empty()) {
                relay_error_ = error;
                return;
            }
            if (relay_pending_ && relay_peer_ && *relay_peer_ == from) relay_ready();
        });
    }
    if (!media_) return;
    const Time now = loop_.now();
    const auto received = media_->on_datagram(frame, now);
    if (received.verdict == MediaVerdict::dropped) {
        media_rearm();
        return;
    }
    if (!report_.time_to_connect) report_.time_to_connect = now - peer_at_;
    const bool through_relay = via_turn || (peer_relayed_ && from == *peer_relayed_);
    if (gap_from_ && rung_ == Rung::relay && through_relay) {
        report_.fallback_time = now - *gap_from_;
        gap_from_.reset();
    }
    last_frame_at_ = now;
    media_flush(received.reply);
    if (received.verdict == MediaVerdict::data && payload_callback)
        payload_callback(received.payload);
    if (!streaming_ && phase_ == Phase::media) {
        // The peer answers on this path: its side is up. Media for --duration from now.
        streaming_ = true;
        if (!payload_callback) media_flush(media_->stream_for(config_.duration, now));
        if (!payload_callback || config_.duration > Time{0})
            phase_timer_ = loop_.after(config_.duration, [this] {
                phase_timer_.reset();
                end_media();
            });
    }
    media_rearm();
}

bool Call::Impl::send_payload(std::span<const std::byte> payload) {
    if (!media_ || phase_ != Phase::media) return false;
    media_flush(media_->wrap(payload, loop_.now()));
    return true;
}

void Call::Impl::monitor() {
    monitor_timer_.reset();
    if (phase_ != Phase::media) return;
    const Time now = loop_.now();
    if (!media_->path_alive(now) && !relay_pending_) {
        if (rung_ == Rung::p2p || rung_ == Rung::sfu) {
            go_relay(std::string(rung_ == Rung::p2p ? "the P2P" : "the SFU") +
                         " path died (nothing heard for " +
                         std::to_string(config_.media.dead_after.count() / 1000) + " ms)",
                     true);
        } else {
            fail("the relay path died (nothing heard for " +
                 std::to_string(config_.media.dead_after.count() / 1000) + " ms)");
            return;
        }
    }
    monitor_timer_ = loop_.after(monitor_every, [this] { monitor(); });
}

void Call::Impl::end_media() {
    if (phase_ != Phase::media) return;
    phase_ = Phase::ending;
    end_step("media", "ok");
    media_flush(media_->close(loop_.now()));
    media_rearm();
    // Bounded however the byes go: finish() runs when they are exchanged, or at this bound.
    phase_timer_ = loop_.after(config_.bye_wait, [this] {
        phase_timer_.reset();
        finish();
    });
}

// ---------------------------------------------------------------------------------------------
// The socket: relay server, media, STUN (RFC 7983)

void Call::Impl::readable() {
    std::array<std::byte, 2048> buffer;
    stun::Address from;
    for (long n; (n = socket_.receive_from(buffer, from)) >= 0;) {
        const auto d = std::span<const std::byte>(buffer).first(static_cast<std::size_t>(n));
        if (turn_ && relay_server_ && from == *relay_server_) {
            turn_->on_datagram(from, d);
            continue;
        }
        if (MediaSession::is_media(d)) {
            // Frames only from where the path says the peer is.
            const bool expected = (direct_ && from == *direct_) ||
                                  (sfu_node_ && from == *sfu_node_) ||
                                  (peer_relayed_ && from == *peer_relayed_);
            if (expected) {
                on_media(from, d, false);
            } else if (rung_ == Rung::sfu && sfu_ && sfu_->latch(from)) {
                // The node's traffic comes from its registered address now (SfuRung::latch()).
                sfu_node_ = from;
                report_.remote = from;
                on_media(from, d, false);
            } else {
                ++report_.stray_media;
            }
            continue;
        }
        if (looks_like_stun(d) && sfu_ && sfu_->claims(from, d)) {
            // After the rung is left the node's answers still come here (counted as stray),
            // never to the punch session, which would answer them 401.
            if (sfu_stopped_) {
                ++report_.stray_other;
                continue;
            }
            sfu_flush(sfu_->on_datagram(from, d, loop_.now()));
            sfu_progress();
            continue;
        }
        if (looks_like_stun(d) && punch_) {
            punch_flush(punch_->on_datagram(from, d, loop_.now()));
            if (phase_ == Phase::punching) punch_rearm();
            continue;
        }
        ++report_.stray_other;
    }
}

// ---------------------------------------------------------------------------------------------

Call::Call(EventLoop& loop, CallConfig config)
    : impl_(std::make_unique<Impl>(loop, std::move(config))) {}
Call::~Call() = default;
std::string Call::start(std::function<void(const CallReport&)> done) {
    return impl_->start(std::move(done));
}
void Call::hang_up() { impl_->hang_up(); }
bool Call::send_payload(std::span<const std::byte> payload) {
    return impl_->send_payload(payload);
}
void Call::on_payload(std::function<void(std::span<const std::byte>)> callback) {
    impl_->payload_callback = std::move(callback);
}

}  // namespace punch
