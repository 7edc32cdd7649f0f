// Helpers the engine's GoogleTest suites share.
#pragma once

#include <gtest/gtest.h>

#include <string_view>

#include "stun/address.h"

namespace engine::test {

/// An address from its text ("198.18.0.2", "2001:db8::2"), port 0; a test failure if invalid.
inline stun::Address address(std::string_view text) {
    stun::Address out;
    EXPECT_TRUE(stun::Address::from_string(text, 0, out)) << text;
    return out;
}

}  // namespace engine::test
