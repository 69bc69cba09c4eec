#include "render/table.hpp"

#include <algorithm>

namespace esctl {
namespace {

// Display width: counts UTF-8 lead bytes, so multi-byte names do not skew the columns.
std::size_t width(const std::string& s) {
  return static_cast<std::size_t>(std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xc0) != 0x80; }));
}

}  // namespace

void Table::render(std::string& out) const {
  std::vector<std::size_t> w(headers_.size());
  for (std::size_t i = 0; i < headers_.size(); ++i) w[i] = width(headers_[i]);
  for (const auto& r : rows_)
    for (std::size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], width(r[i]));
  auto line = [&](const std::vector<std::string>& r) {
    std::string l;
    for (std::size_t i = 0; i < w.size(); ++i) {
      const std::string cell = i < r.size() ? r[i] : std::string();
      std::size_t pad = w[i] - width(cell);
      bool is_right = i < right_.size() && right_[i];
      if (i) l.append("  ");
      if (is_right) l.append(pad, ' ');
      l.append(cell);
      if (!is_right && i + 1 < w.size()) l.append(pad, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out.append(l).push_back('\n');
  };
  line(headers_);
  for (const auto& r : rows_) line(r);
}

}  // namespace esctl
