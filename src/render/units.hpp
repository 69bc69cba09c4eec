// Numbers for humans: byte sizes in binary units and counted nouns ("1 event", "2 events").
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace esctl {

/// `bytes` in the largest binary unit that keeps it >= 1: "512 B", "4.0 KiB", "38.4 MiB", "1.2 GiB".
std::string human_bytes(std::int64_t bytes);

/// "1 event", "0 events", "3 events": `n` and `noun`, with `plural` (default noun + "s") unless n is 1.
std::string counted(std::int64_t n, std::string_view noun, std::string_view plural = {});

}  // namespace esctl
