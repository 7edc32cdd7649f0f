#include "punch/media_session.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "stun/bytes.h"

namespace punch {

namespace {

constexpr std::byte mark0{'P'};
constexpr std::byte mark1{'L'};
constexpr std::uint32_t bye_answer = 1;  // flags bit 0
constexpr std::int64_t us_per_s = 1'000'000;

// Big-endian fields through stun/'s helpers (style rule 7); lengths are checked before.
using stun::load_be32;
using stun::load_be64;
using stun::store_be32;
using stun::store_be64;

std::string ms(Time t) {
    std::array<char, 32> text{};
    std::snprintf(text.data(), text.size(), "%.1f", static_cast<double>(t.count()) / 1000.0);
    return text.data();
}

std::string optional_ms(const std::optional<Time>& t) { return t ? ms(*t) + " ms" : "-"; }

}  // namespace

std::string_view to_string(MediaDrop reason) noexcept {
    const auto i = static_cast<std::size_t>(reason);
    return i < media_drop_reasons.size() ? media_drop_reasons[i].name : "?";
}

std::string_view to_string(MediaState state) noexcept {
    switch (state) {
        case MediaState::idle: return "idle";
        case MediaState::open: return "open";
        case MediaState::closing: return "closing";
        case MediaState::closed: return "closed";
    }
    return "?";
}

MediaSession::MediaSession(MediaConfig config) : config_(config) {
    const bool synthetic = config_.bitrate_bps != 0 || config_.packet_rate != 0;
    if (synthetic) {
        if (config_.packet_rate == 0)
            throw std::invalid_argument(
                "media config: packet_rate is 0 with bitrate_bps set; give both, or both 0 for "
                "no synthetic traffic");
        if (config_.bitrate_bps == 0)
            throw std::invalid_argument(
                "media config: bitrate_bps is 0 with packet_rate set; give both, or both 0 for "
                "no synthetic traffic");
        frame_size_ = static_cast<std::size_t>(config_.bitrate_bps / 8 / config_.packet_rate);
        if (frame_size_ < media_header_size)
            throw std::invalid_argument(
                "media config: bitrate_bps / 8 / packet_rate = " + std::to_string(frame_size_) +
                " bytes per frame, less than the " + std::to_string(media_header_size) +
                "-byte header; raise bitrate_bps or lower packet_rate");
        if (frame_size_ > media_max_frame)
            throw std::invalid_argument(
                "media config: bitrate_bps / 8 / packet_rate = " + std::to_string(frame_size_) +
                " bytes per frame, more than " + std::to_string(media_max_frame) +
                " (one packet on every rung); raise packet_rate");
    }
    if (config_.keepalive <= Time{0})
        throw std::invalid_argument("media config: keepalive must be > 0");
    if (config_.dead_after <= Time{0})
        throw std::invalid_argument("media config: dead_after must be > 0");
    if (config_.bye_interval <= Time{0})
        throw std::invalid_argument("media config: bye_interval must be > 0");
    if (config_.bye_attempts == 0)
        throw std::invalid_argument("media config: bye_attempts must be >= 1");
    if (config_.max_catch_up == 0)
        throw std::invalid_argument("media config: max_catch_up must be >= 1");

    // Enough for the largest single call (a catch-up burst, a ping, a bye) so that steady state
    // never reallocates.
    const std::size_t most = config_.max_catch_up + 3;
    out_.reserve(most * media_max_frame);
    out_ends_.reserve(most);
    out_frames_.reserve(most);
    synthetic_payload_.resize(frame_size_ > media_header_size ? frame_size_ - media_header_size
                                                              : 0);
    // A counting pattern: the content carries nothing (the receiver counts frames), but a
    // capture of it reads as payload rather than as padding.
    for (std::size_t i = 0; i < synthetic_payload_.size(); ++i)
        synthetic_payload_[i] = static_cast<std::byte>(i & 0xFF);
}

bool MediaSession::is_media(std::span<const std::byte> d) noexcept {
    // RFC 7983 §7: 128..191 is the RTP/RTCP range; the mark tells our frames from RTP's.
    return d.size() >= 3 && (std::to_integer<std::uint8_t>(d[0]) & 0xC0) == 0x80 &&
           d[1] == mark0 && d[2] == mark1;
}

void MediaSession::begin_frames() noexcept {
    out_.clear();
    out_ends_.clear();
}

MediaSession::Frames MediaSession::end_frames() noexcept {
    // Views are made only now: out_ may have grown (reallocated) while frames were appended.
    out_frames_.clear();
    std::size_t begin = 0;
    for (const std::size_t end : out_ends_) {
        out_frames_.emplace_back(out_.data() + begin, end - begin);
        begin = end;
    }
    return out_frames_;
}

std::byte* MediaSession::frame(MediaType type, std::size_t size, Time now) noexcept {
    const std::size_t begin = out_.size();
    out_.resize(begin + size);
    out_ends_.push_back(begin + size);
    std::byte* p = out_.data() + begin;
    p[0] = static_cast<std::byte>(0x80 | media_version);
    p[1] = mark0;
    p[2] = mark1;
    p[3] = static_cast<std::byte>(type);
    store_be32(p + 4, config_.call_id);
    store_be32(p + 8, next_sequence_[static_cast<std::size_t>(type) - 1]++);
    store_be64(p + 12, static_cast<std::uint64_t>(now.count()));
    report_.bytes_sent += size;
    path().bytes_sent += size;
    return p;
}

void MediaSession::send_data(std::span<const std::byte> payload, Time now) noexcept {
    std::byte* p = frame(MediaType::data, media_header_size + payload.size(), now);
    if (!payload.empty()) std::memcpy(p + media_header_size, payload.data(), payload.size());
    ++report_.data_sent;
    ++path().data_sent;
}

void MediaSession::send_ping(Time now) noexcept {
    last_ping_at_ = now;
    const std::uint32_t sequence = next_sequence_[static_cast<std::size_t>(MediaType::ping) - 1];
    frame(MediaType::ping, media_header_size, now);
    recent_pings_[sequence % recent_pings_.size()] =
        SentPing{.sequence = sequence, .at = now.count(), .used = true};
    ++report_.pings_sent;
    ++path().pings_sent;
}

void MediaSession::send_bye(Time now, bool answer) noexcept {
    std::byte* p = frame(MediaType::bye, media_bye_size, now);
    store_be32(p + 20, static_cast<std::uint32_t>(report_.data_sent));
    store_be32(p + 24, static_cast<std::uint32_t>(report_.data_received));
    store_be32(p + 28, answer ? bye_answer : 0);
}

MediaSession::Frames MediaSession::start(Time now, std::string_view path_name) {
    begin_frames();
    last_now_ = now;
    if (state_ != MediaState::idle) return end_frames();
    state_ = MediaState::open;
    report_.paths.push_back(
        MediaPathReport{.name = std::string(path_name), .since = now, .rtt_min = {}, .srtt = {}});
    last_alive_ = now;
    send_ping(now);
    schedule_first_pings(now);
    return end_frames();
}

void MediaSession::schedule_first_pings(Time now) noexcept {
    ping_backoff_ = config_.first_ping_retry;
    next_ping_ = now + (ping_backoff_ > Time{0} ? std::min(ping_backoff_, config_.keepalive)
                                                : config_.keepalive);
}

Time MediaSession::stream_slot(std::uint64_t k) const noexcept {
    // Each slot from the stream's start, never from the previous slot: no drift from rounding
    // 1 s / packet_rate, and a late wake-up does not shift the slots after it.
    return stream_start_ +
           Time{static_cast<std::int64_t>(k * us_per_s / config_.packet_rate)};
}

std::uint64_t MediaSession::stream_remaining() const noexcept {
    return stream_count_ - stream_next_;
}

MediaSession::Frames MediaSession::stream_for(Time duration, Time now) {
    if (state_ != MediaState::open || frame_size_ == 0 || duration <= Time{0}) {
        begin_frames();
        return end_frames();
    }
    // Slot k is at floor(k·10⁶ / R) µs, before the end while k·10⁶ < D·R: ceil(D·R / 10⁶)
    // frames, exactly R·N for N whole seconds.
    const auto d = static_cast<std::uint64_t>(duration.count());
    stream_start_ = now;
    stream_next_ = 0;
    stream_count_ = (d * config_.packet_rate + us_per_s - 1) / us_per_s;
    return on_timer(now);
}

MediaSession::Frames MediaSession::wrap(std::span<const std::byte> payload, Time now) {
    begin_frames();
    last_now_ = now;
    if (state_ != MediaState::open || payload.size() > media_max_payload) {
        ++wrap_refused_;
        return end_frames();
    }
    send_data(payload, now);
    return end_frames();
}

MediaSession::Frames MediaSession::close(Time now) {
    begin_frames();
    last_now_ = now;
    if (state_ != MediaState::open) return end_frames();
    state_ = MediaState::closing;
    stream_count_ = stream_next_;
    send_bye(now, false);
    byes_sent_ = 1;
    next_bye_ = now + config_.bye_interval;
    return end_frames();
}

MediaSession::Frames MediaSession::on_timer(Time now) {
    begin_frames();
    last_now_ = now;
    if (state_ == MediaState::closing && now >= next_bye_) {
        if (byes_sent_ < config_.bye_attempts) {
            send_bye(now, false);
            ++byes_sent_;
            next_bye_ = now + config_.bye_interval;
        } else {
            state_ = MediaState::closed;  // the peer is gone or deaf: its figures stay unknown
        }
    }
    if (state_ != MediaState::open) return end_frames();

    if (stream_next_ < stream_count_ && stream_slot(stream_next_) <= now) {
        // Frames due: every slot at or before now. More than max_catch_up after a late wake-up:
        // the oldest are skipped rather than sent in a burst the path would queue or drop.
        // Slot k is due when floor(k·10⁶ / R) <= t, that is k·10⁶ < (t + 1)·R: computed, not
        // walked, so that an hour's stall costs no more than a 20 ms one.
        const auto t = static_cast<std::uint64_t>((now - stream_start_).count());
        const std::uint64_t due_end = std::min<std::uint64_t>(
            stream_count_, ((t + 1) * config_.packet_rate + us_per_s - 1) / us_per_s);
        if (due_end - stream_next_ > config_.max_catch_up) {
            report_.pacing_skipped += due_end - stream_next_ - config_.max_catch_up;
            stream_next_ = due_end - config_.max_catch_up;
        }
        for (; stream_next_ < due_end; ++stream_next_)
            send_data(std::span(synthetic_payload_), now);
    }
    if (now >= next_ping_) {
        send_ping(now);
        if (ping_backoff_ > Time{0}) {
            // Not heard on this path yet: the next early ping, twice as far.
            ping_backoff_ = std::min(2 * ping_backoff_, config_.keepalive);
            next_ping_ = now + ping_backoff_;
        } else {
            // One ping however late the wake-up: a keepalive has nothing to catch up.
            next_ping_ += config_.keepalive;
            if (next_ping_ <= now) next_ping_ = now + config_.keepalive;
        }
    }
    return end_frames();
}

std::optional<Time> MediaSession::next_timer() const noexcept {
    if (state_ == MediaState::closing) return next_bye_;
    if (state_ != MediaState::open) return std::nullopt;
    Time due = next_ping_;
    if (stream_next_ < stream_count_) due = std::min(due, stream_slot(stream_next_));
    // The moment the path dies, unless it has already been seen dead.
    const Time death = last_alive_ + config_.dead_after;
    if (death > last_now_) due = std::min(due, death);
    return due;
}

bool MediaSession::path_alive(Time now) const noexcept {
    if (state_ != MediaState::open && state_ != MediaState::closing) return false;
    return now - last_alive_ < config_.dead_after;
}

MediaSession::Frames MediaSession::path_changed(Time now, std::string_view path_name) {
    begin_frames();
    last_now_ = now;
    if (state_ != MediaState::open) return end_frames();
    ++report_.path_changes;
    report_.paths.push_back(
        MediaPathReport{.name = std::string(path_name), .since = now, .rtt_min = {}, .srtt = {}});
    last_alive_ = now;
    report_.rtt_last.reset();
    report_.rtt_min.reset();
    report_.srtt.reset();
    report_.rttvar.reset();
    // A pong to a ping sent on the old path would time the old path.
    for (auto& p : recent_pings_) p.used = false;
    send_ping(now);
    schedule_first_pings(now);
    return end_frames();
}

MediaSession::Received MediaSession::drop(MediaDrop reason) noexcept {
    ++report_.drops[static_cast<std::size_t>(reason)];
    Received r;
    r.drop = reason;
    r.reply = end_frames();
    return r;
}

MediaSession::Received MediaSession::on_datagram(std::span<const std::byte> d, Time now) {
    begin_frames();
    last_now_ = now;
    if (!is_media(d)) return drop(MediaDrop::not_media);
    if ((std::to_integer<std::uint8_t>(d[0]) & 0x3F) != media_version)
        return drop(MediaDrop::wrong_version);
    if (d.size() < media_header_size) return drop(MediaDrop::too_short);
    if (load_be32(d.data() + 4) != config_.call_id) return drop(MediaDrop::wrong_call);
    const auto type = std::to_integer<std::uint8_t>(d[3]);
    if (type < static_cast<std::uint8_t>(MediaType::data) ||
        type > static_cast<std::uint8_t>(MediaType::bye))
        return drop(MediaDrop::unknown_type);
    const auto media_type = static_cast<MediaType>(type);
    if ((media_type == MediaType::pong && d.size() < media_pong_size) ||
        (media_type == MediaType::bye && d.size() < media_bye_size))
        return drop(MediaDrop::too_short);
    if (state_ == MediaState::idle) return drop(MediaDrop::not_open);

    const std::uint32_t sequence = load_be32(d.data() + 8);
    const auto sent_at = static_cast<std::int64_t>(load_be64(d.data() + 12));
    Received result;
    switch (media_type) {
        case MediaType::data:
            receive_data(sequence, sent_at, now, result);
            if (result.verdict == MediaVerdict::data) result.payload = d.subspan(media_header_size);
            break;
        case MediaType::ping: {
            if (state_ == MediaState::closed) return drop(MediaDrop::not_open);
            // Answered at once, so the hold is 0; the field lets a responder that queues pings
            // keep its queueing out of the peer's RTT (as RTCP's DLSR does, RFC 3550 §6.4.1).
            std::byte* p = frame(MediaType::pong, media_pong_size, now);
            store_be32(p + 20, sequence);
            store_be64(p + 24, static_cast<std::uint64_t>(sent_at));
            store_be32(p + 32, 0);
            store_be32(p + 36, static_cast<std::uint32_t>(report_.data_received));
            store_be32(p + 40, static_cast<std::uint32_t>(any_data_ ? highest_ + 1 : 0));
            ++report_.pings_received;
            result.verdict = MediaVerdict::ping;
            break;
        }
        case MediaType::pong: receive_pong(d, now, result); break;
        case MediaType::bye: receive_bye(d, now, result); break;
    }
    if (result.drop) return drop(*result.drop);
    last_alive_ = now;
    if (ping_backoff_ > Time{0}) {
        // Heard on this path: keepalives from here on, from the last ping.
        ping_backoff_ = Time{0};
        next_ping_ = last_ping_at_ + config_.keepalive;
    }
    report_.bytes_received += d.size();
    path().bytes_received += d.size();
    result.reply = end_frames();
    return result;
}

void MediaSession::receive_data(std::uint32_t sequence, std::int64_t sent_at, Time now,
                                Received& result) noexcept {
    if (report_.peer_sent && sequence >= *report_.peer_sent) {
        result.drop = MediaDrop::after_bye;
        return;
    }
    if (state_ == MediaState::closed && !report_.peer_sent) {
        result.drop = MediaDrop::not_open;
        return;
    }
    auto bit = [this](std::uint64_t s) -> std::uint64_t& { return seen_[(s % window) / 64]; };
    auto mask = [](std::uint64_t s) { return std::uint64_t{1} << (s % 64); };
    const std::uint64_t s = sequence;
    if (!any_data_ || s > highest_) {
        // Newer than everything: clear the slots between, which now stand for frames not (yet)
        // received.
        const std::uint64_t from = any_data_ ? highest_ + 1 : 0;
        if (s - from >= window) {
            seen_.fill(0);
        } else {
            for (std::uint64_t i = from; i < s; ++i) bit(i) &= ~mask(i);
        }
        bit(s) |= mask(s);
        highest_ = s;
        any_data_ = true;
    } else if (highest_ - s >= window) {
        result.drop = MediaDrop::too_old;
        return;
    } else if (bit(s) & mask(s)) {
        ++report_.duplicates;
        result.verdict = MediaVerdict::duplicate;
        return;
    } else {
        bit(s) |= mask(s);
        ++report_.reordered;
    }
    ++report_.data_received;
    ++path().data_received;
    // RFC 3550 §6.4.1: D(i,j) = (Rj - Ri) - (Sj - Si), the difference of the transit times of
    // consecutive arrivals; J += (|D| - J) / 16. The two clocks need not agree: their offset
    // cancels in D.
    // In double: a timestamp from the wire is whatever the sender wrote, and an int64
    // difference of two of them could overflow (exact to the µs up to 2^53 µs, 285 years).
    const double transit = static_cast<double>(now.count()) - static_cast<double>(sent_at);
    if (report_.data_received > 1)
        jitter_us_ += (std::fabs(transit - last_transit_) - jitter_us_) / 16.0;
    last_transit_ = transit;
    result.verdict = MediaVerdict::data;
}

void MediaSession::receive_pong(std::span<const std::byte> d, Time now,
                                Received& result) noexcept {
    const std::uint32_t pong_sequence = load_be32(d.data() + 8);
    const std::uint32_t echoed = load_be32(d.data() + 20);
    const auto echoed_at = static_cast<std::int64_t>(load_be64(d.data() + 24));
    const Time hold{load_be32(d.data() + 32)};
    const SentPing& sent = recent_pings_[echoed % recent_pings_.size()];
    if (!sent.used || sent.sequence != echoed || sent.at != echoed_at) {
        result.drop = MediaDrop::unknown_pong;
        return;
    }
    const Time rtt = now - Time{echoed_at} - hold;
    if (rtt < Time{0}) {
        result.drop = MediaDrop::unknown_pong;
        return;
    }
    ++report_.pongs_received;
    ++path().pongs_received;
    report_.rtt_last = rtt;
    report_.rtt_min = report_.rtt_min ? std::min(*report_.rtt_min, rtt) : rtt;
    if (!report_.srtt) {
        // RFC 6298 §2.2: the first measurement.
        report_.srtt = rtt;
        report_.rttvar = rtt / 2;
    } else {
        // RFC 6298 §2.3, alpha 1/8, beta 1/4; RTTVAR first, from the old SRTT.
        const Time error = *report_.srtt > rtt ? *report_.srtt - rtt : rtt - *report_.srtt;
        report_.rttvar = (*report_.rttvar * 3 + error) / 4;
        report_.srtt = (*report_.srtt * 7 + rtt) / 8;
    }
    path().rtt_min = report_.rtt_min;
    path().srtt = report_.srtt;
    // The receive report: only from the newest pong, so a reordered old one cannot roll it back.
    if (!pong_seen_ || pong_sequence > last_pong_sequence_) {
        pong_seen_ = true;
        last_pong_sequence_ = pong_sequence;
        if (!report_.peer_final) {
            report_.peer_received = load_be32(d.data() + 36);
            report_.peer_expected = load_be32(d.data() + 40);
        }
    }
    result.verdict = MediaVerdict::pong;
}

void MediaSession::receive_bye(std::span<const std::byte> d, Time now,
                               Received& result) noexcept {
    const bool answer = (load_be32(d.data() + 28) & bye_answer) != 0;
    // The counts of the peer's latest bye: a later one (its final, below) knows more.
    report_.peer_sent = load_be32(d.data() + 20);
    report_.peer_received = load_be32(d.data() + 24);
    report_.peer_expected = report_.data_sent;
    report_.peer_final = true;
    result.verdict = MediaVerdict::bye;
    if (!answer) {
        // The peer hangs up (or repeats its bye: ours got lost): answer with our figures,
        // final since we stop sending here.
        if (state_ == MediaState::open || state_ == MediaState::closing)
            state_ = MediaState::closed;
        send_bye(now, true);
        return;
    }
    if (state_ == MediaState::closing) {
        // The answer to our bye. Our own bye went out before the peer's last data arrived; one
        // more, flagged as an answer so that it is not answered, gives the peer our final count.
        state_ = MediaState::closed;
        send_bye(now, true);
    }
}

MediaReport MediaSession::report() const {
    MediaReport r = report_;
    r.state = state_;
    r.expected = report_.peer_sent ? *report_.peer_sent : (any_data_ ? highest_ + 1 : 0);
    r.lost = r.expected > r.data_received ? r.expected - r.data_received : 0;
    r.jitter_ms = jitter_us_ / 1000.0;
    return r;
}

std::string to_string(const MediaReport& r) {
    std::string text = "sent " + std::to_string(r.data_sent) + ", peer received ";
    if (r.peer_received) {
        const std::uint64_t expected = r.peer_expected.value_or(r.data_sent);
        text += std::to_string(*r.peer_received) + ", lost " +
                std::to_string(expected > *r.peer_received ? expected - *r.peer_received : 0) +
                (r.peer_final ? "" : " (so far)");
    } else {
        text += "-";
    }
    std::array<char, 96> figures{};
    const double loss_percent =
        r.expected ? 100.0 * static_cast<double>(r.lost) / static_cast<double>(r.expected) : 0;
    std::snprintf(figures.data(), figures.size(), " (%.2f%%), duplicates %llu, reordered %llu",
                  loss_percent, static_cast<unsigned long long>(r.duplicates),
                  static_cast<unsigned long long>(r.reordered));
    text += "; received " + std::to_string(r.data_received) + " of " +
            std::to_string(r.expected) + ", lost " + std::to_string(r.lost) + figures.data();
    std::snprintf(figures.data(), figures.size(), ", jitter %.2f ms", r.jitter_ms);
    text += figures.data();
    text += "; rtt " + optional_ms(r.rtt_last);
    if (r.rtt_min) text += " (min " + ms(*r.rtt_min) + ", srtt " + ms(*r.srtt) + ")";
    for (const auto& p : r.paths)
        text += "; " + p.name + ": sent " + std::to_string(p.data_sent) + " received " +
                std::to_string(p.data_received) + " rtt " + optional_ms(p.srtt);
    std::uint64_t drops = 0;
    for (const auto n : r.drops) drops += n;
    text += "; drops " + std::to_string(drops);
    return text;
}

}  // namespace punch
