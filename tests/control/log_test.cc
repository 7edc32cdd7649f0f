// Tests for control/log.cc: the level filter, each level's prefix, and the rate limit on an
// injected clock (lines past it counted and reported). The lines go to a sink, as the test
// hook allows; the stderr and syslog writers are the two calls log.cc makes with them.
#include "control/log.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace control {
namespace {

using engine::LogLevel;

class LogTest : public testing::Test {
protected:
    void SetUp() override {
        set_log_sink([this](LogLevel level, std::string_view line) {
            lines_.emplace_back(level, std::string(line));
        }, [this] { return now_ms_; });
        configure_log({LogLevel::info, engine::LogTarget::stderr_stream});
    }
    void TearDown() override {
        set_log_sink({}, {});
        configure_log({});
    }
    std::vector<std::pair<LogLevel, std::string>> lines_;
    std::uint64_t now_ms_ = 5000;
};

TEST_F(LogTest, EachLevelHasItsPrefix) {
    configure_log({LogLevel::debug, engine::LogTarget::stderr_stream});
    log_error("e");
    log_warn("w");
    log_info("i");
    log_debug("d");
    ASSERT_EQ(lines_.size(), 4u);
    EXPECT_EQ(lines_[0].second, "punchlined: error: e");
    EXPECT_EQ(lines_[1].second, "punchlined: warning: w");
    // Info, the operator's everyday line, keeps the engine's established form.
    EXPECT_EQ(lines_[2].second, "punchlined: i");
    EXPECT_EQ(lines_[3].second, "punchlined: debug: d");
    EXPECT_EQ(lines_[3].first, LogLevel::debug);
}

TEST_F(LogTest, LinesBelowTheLevelAreLeftOut) {
    configure_log({LogLevel::warn, engine::LogTarget::stderr_stream});
    EXPECT_FALSE(log_enabled(LogLevel::info));
    EXPECT_TRUE(log_enabled(LogLevel::error));
    log_info("no");
    log_debug("no");
    log_warn("yes");
    log_error("yes too");
    ASSERT_EQ(lines_.size(), 2u);
    EXPECT_EQ(lines_[0].second, "punchlined: warning: yes");
}

TEST_F(LogTest, AFloodIsSuppressedAndCounted) {
    for (unsigned i = 0; i < max_log_lines_per_second + 5; ++i) log_info("refused");
    EXPECT_EQ(lines_.size(), max_log_lines_per_second);
    // Errors always pass, and tell of what was left out first.
    log_error("fatal");
    ASSERT_EQ(lines_.size(), max_log_lines_per_second + 2);
    EXPECT_EQ(lines_[max_log_lines_per_second].second,
              "punchlined: warning: 5 log line(s) suppressed: more than 20 a second");
    EXPECT_EQ(lines_.back().second, "punchlined: error: fatal");
    // A second later the window is new.
    now_ms_ += 1000;
    log_info("again");
    EXPECT_EQ(lines_.back().second, "punchlined: again");
}

}  // namespace
}  // namespace control
