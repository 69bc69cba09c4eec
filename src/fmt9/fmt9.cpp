// fmt 9's compiled part, built from the installed fmt headers into esctl itself: the binary then
// loads no libfmt.so, and (with libstdc++ linked statically, see CMakeLists.txt) no C++ shared
// library at all, whose symbol relocations were a third of a one-event `esctl append`.
// format-inl.h defines the library's functions; the templates esctl's code uses from the library
// are instantiated here. Used only with fmt 9.x (CMakeLists.txt falls back to libfmt.so).
#include <fmt/format-inl.h>

FMT_BEGIN_NAMESPACE
namespace detail {
template auto dragonbox::to_decimal(float x) noexcept -> dragonbox::decimal_fp<float>;
template auto dragonbox::to_decimal(double x) noexcept -> dragonbox::decimal_fp<double>;
template auto thousands_sep_impl(locale_ref) -> thousands_sep_result<char>;
template auto decimal_point_impl(locale_ref) -> char;
}  // namespace detail
FMT_END_NAMESPACE
