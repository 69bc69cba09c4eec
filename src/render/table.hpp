// Plain aligned text tables for human output (streams, stats, queue ls). Numbers right-aligned.
#pragma once
#include <string>
#include <vector>

namespace esctl {

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  /// Marks column `i` as numeric (right-aligned).
  Table& right(std::size_t i) {
    if (right_.size() <= i) right_.resize(i + 1);
    right_[i] = true;
    return *this;
  }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  bool empty() const { return rows_.empty(); }
  /// Appends the table, header first, columns separated by two spaces, no trailing blanks.
  void render(std::string& out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace esctl
