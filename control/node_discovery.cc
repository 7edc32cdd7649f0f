// An SFU node's NAT self-discovery from its one port (control/node_discovery.h).
#include "control/node_discovery.h"

#include <utility>

#include "stun/constants.h"

namespace control {
namespace {

punch::TestResult test_result(const punch::BindingResult& result) {
    punch::TestResult out;
    switch (result.status) {
        case punch::TransactionStatus::success:
            out.outcome = punch::TestOutcome::success;
            out.mapped = result.mapped;
            out.from = result.from;
            out.other_address = result.other_address;
            break;
        case punch::TransactionStatus::error_response:
            out.outcome = punch::TestOutcome::error_response;
            out.from = result.from;
            break;
        // A request the transport could not take is as good as lost: nothing came back.
        case punch::TransactionStatus::timeout:
        case punch::TransactionStatus::send_failed:
            out.outcome = punch::TestOutcome::timeout;
            break;
    }
    return out;
}

}  // namespace

NodeDiscovery::NodeDiscovery(const punch::Clock& clock, punch::TimerQueue& timers,
                             punch::DatagramSender& transport, stun::Address local,
                             punch::RetransmissionPolicy policy)
    : clock_(clock), local_(local), client_(clock, timers, transport, policy) {}

bool NodeDiscovery::start(const stun::Address& server, Done done) {
    if (running_) return false;
    report_ = {};
    report_.tests.server = server;
    report_.tests.local = local_;
    started_ = clock_.now();
    done_ = std::move(done);
    const auto id = client_.start_binding(server, 0, [this](const punch::BindingResult& r) {
        on_test1(r);
    });
    if (!id) return false;
    running_ = true;
    return true;
}

punch::DatagramVerdict NodeDiscovery::on_datagram(const stun::Address& from,
                                                  std::span<const std::byte> datagram) {
    return client_.on_datagram(from, datagram);
}

void NodeDiscovery::cancel() {
    client_.cancel_all();
    running_ = false;
    outstanding_ = 0;
    done_ = nullptr;
}

void NodeDiscovery::on_test1(const punch::BindingResult& result) {
    report_.tests.mapping1 = test_result(result);
    report_.tests.filtering1 = report_.tests.mapping1;
    if (result.status != punch::TransactionStatus::success) {
        finish();
        return;
    }
    report_.public_address = result.mapped;
    // RFC 5780 §4.2: "If the OTHER-ADDRESS is not returned, the server does not support this
    // usage and this test cannot be run": the address is known, the type is not.
    if (!result.other_address) {
        finish();
        return;
    }
    start_filtering();
}

bool NodeDiscovery::start_test(const stun::Address& to, std::uint32_t change_flags,
                               punch::TestResult& slot) {
    const auto id = client_.start_binding(to, change_flags,
                                          [this, &slot](const punch::BindingResult& r) {
                                              slot = test_result(r);
                                              if (--outstanding_ != 0) return;
                                              if (&slot == &report_.tests.filtering2 ||
                                                  &slot == &report_.tests.filtering3)
                                                  start_mapping();
                                              else
                                                  finish();
                                          });
    if (!id) return false;
    ++outstanding_;
    return true;
}

void NodeDiscovery::start_filtering() {
    // RFC 5780 §4.4 tests II and III: both to the primary address, which alone has heard from
    // this mapping, so an answer from elsewhere shows what the filter lets in.
    const stun::Address server = report_.tests.server;
    const bool both = start_test(server, stun::change_ip | stun::change_port,
                                 report_.tests.filtering2) &&
                      start_test(server, stun::change_port, report_.tests.filtering3);
    // No random transaction ID (the generator failed): the tests stay not_run, the filtering
    // unknown; the mapping tests are still worth a try.
    if (!both && outstanding_ == 0) start_mapping();
}

void NodeDiscovery::start_mapping() {
    // RFC 5780 §4.3: test I showed the mapped address is our own: no NAT, tests II and III are
    // not needed (classify_mapping() decides no_nat from test I alone).
    if (report_.tests.mapping1.mapped == local_ || !report_.tests.mapping1.other_address) {
        finish();
        return;
    }
    const stun::Address other = *report_.tests.mapping1.other_address;
    stun::Address alternate_ip_primary_port = other;
    alternate_ip_primary_port.port = report_.tests.server.port;
    const bool both = start_test(alternate_ip_primary_port, 0, report_.tests.mapping2) &&
                      start_test(other, 0, report_.tests.mapping3);
    if (!both && outstanding_ == 0) finish();
}

void NodeDiscovery::finish() {
    running_ = false;
    report_.classification = punch::classify(report_.tests);
    report_.elapsed = clock_.now() - started_;
    Done done = std::move(done_);
    done_ = nullptr;
    if (done) done(report_);
}

}  // namespace control
