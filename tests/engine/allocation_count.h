// Counts operator new calls, so that a test can show that a per-packet function does not
// allocate (style rule 5). A test binary that links allocation_count.cc has its global
// operator new replaced by a counting one; OpenSSL's own allocations are not seen here
// (tests/stun/no_allocation_test.cc counts those for the digests).
#pragma once

#include <cstddef>

namespace engine::test {

/// operator new calls, every form, in this process so far.
[[nodiscard]] std::size_t allocations() noexcept;

}  // namespace engine::test
