#include "base/error.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace kin {
namespace {

TEST(ErrorTest, CodesMapToHttpStatusAndKubernetesReason) {
  struct Case {
    Error e;
    int status;
    const char* reason;
  } cases[] = {
      {Error::BadRequest("x"), 400, "BadRequest"},
      {Error::Unauthorized("x"), 401, "Unauthorized"},
      {Error::Forbidden("x"), 403, "Forbidden"},
      {Error::NotFound("x"), 404, "NotFound"},
      {Error::MethodNotAllowed("x"), 405, "MethodNotAllowed"},
      {Error::NotAcceptable("x"), 406, "NotAcceptable"},
      {Error::AlreadyExists("x"), 409, "AlreadyExists"},
      {Error::Conflict("x"), 409, "Conflict"},
      {Error::Gone("x"), 410, "Expired"},
      {Error::TooLarge("x"), 413, "RequestEntityTooLarge"},
      {Error::UnsupportedMediaType("x"), 415, "UnsupportedMediaType"},
      {Error::Invalid("x"), 422, "Invalid"},
      {Error::Internal("x"), 500, "InternalError"},
      {Error::Unavailable("x"), 503, "ServiceUnavailable"},
      {Error::Timeout("x"), 504, "Timeout"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.e.http_status(), c.status) << c.reason;
    EXPECT_EQ(c.e.reason(), c.reason);
  }
}

TEST(ErrorTest, ErrnoErrorCarriesContextAndStrerror) {
  Error e = ErrnoError(EEXIST, "create veth `kin-a1`");
  EXPECT_EQ(e.message(), "create veth `kin-a1`: File exists");
  EXPECT_EQ(e.code(), Code::kAlreadyExists);
  EXPECT_EQ(e.sys_errno(), EEXIST);
  EXPECT_STREQ(e.what(), "create veth `kin-a1`: File exists");
  EXPECT_EQ(ErrnoError(ENOENT, "open x").code(), Code::kNotFound);
  EXPECT_EQ(ErrnoError(EPERM, "mount").code(), Code::kForbidden);
  EXPECT_EQ(ErrnoError(EIO, "read").code(), Code::kInternal);
}

TEST(ErrorTest, CheckSysThrowsOnlyOnNegative) {
  EXPECT_EQ(CheckSys(3, "ok"), 3);
  errno = ENOENT;
  try {
    CheckSys(-1, "open /nope");
    FAIL() << "expected a throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.message(), "open /nope: No such file or directory");
  }
}

TEST(ErrorTest, InvalidCollectsCausesAndDetails) {
  Error e = Error::Invalid("Pod \"bad\" is invalid");
  e.WithDetails("pods", "bad")
      .WithCause({"FieldValueRequired", "Required value", "spec.containers"});
  ASSERT_EQ(e.causes().size(), 1u);
  EXPECT_EQ(e.causes()[0].field, "spec.containers");
  EXPECT_EQ(e.details_kind(), "pods");
  EXPECT_EQ(e.details_name(), "bad");
}

}  // namespace
}  // namespace kin
