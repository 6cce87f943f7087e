import assert from "node:assert/strict";
import {
  ClosedError,
  ConnectionError,
  FrameTooLargeError,
  LoginFailure,
  LoginRejectedError,
  LoginRequiredError,
  ProtocolError,
} from "../../lib/errors.ts";
import {
  CLOSE_FLUSH_TIMEOUT_MS,
  closeCodeName,
  closeForError,
  closeReason,
  encodeMessageId,
  errorForClose,
  FIRST_MESSAGE_ID,
  isCleanClose,
  MAX_MESSAGE_ID,
  nextMessageId,
  splitMessageId,
} from "../../lib/wire/messages.ts";
import { CloseCode, type CloseCodeValue } from "../../lib/wire/protocol.ts";

type Expected = {
  reason: string;
  clean: boolean;
  error: new (message: string) => Error;
};

/**
 * Every close code with a meaning of its own. Any other code (a new one)
 * must get the defaults: its name in words, not clean, a `ClosedError`.
 */
const CLOSES: Partial<Record<string, Expected>> = {
  normal: { reason: "closed", clean: true, error: ClosedError },
  shuttingDown: {
    reason: "server shutting down",
    clean: true,
    error: ClosedError,
  },
  loginFailed: {
    reason: "login failed",
    clean: false,
    error: LoginRejectedError,
  },
  loginRequired: {
    reason: "login required",
    clean: false,
    error: LoginRejectedError,
  },
  idleTimeout: { reason: "idle timeout", clean: false, error: ClosedError },
  tooSlow: { reason: "too slow", clean: false, error: ClosedError },
  messageTooLarge: {
    reason: "message too large",
    clean: false,
    error: ClosedError,
  },
  protocolError: {
    reason: "protocol error",
    clean: false,
    error: ClosedError,
  },
  handlerError: { reason: "handler error", clean: false, error: ClosedError },
};

function defaultsFor(name: string): Expected {
  const words = name.replace(/[A-Z]/g, (upper) => ` ${upper.toLowerCase()}`);
  return { reason: words, clean: false, error: ClosedError };
}

Deno.test("messages.ts gives every CloseCode a name, a reason, a cleanliness and a client error", () => {
  for (const [name, code] of Object.entries(CloseCode)) {
    const expected = CLOSES[name] ?? defaultsFor(name);
    assert.equal(closeCodeName(code), name);
    assert.equal(closeReason(code), expected.reason, name);
    const info = { code, reason: "why" };
    assert.equal(isCleanClose(info), expected.clean, name);
    const error = errorForClose(info);
    assert.ok(error instanceof expected.error, name);
    if (expected.error === ClosedError) {
      assert.equal(error.message, "Server closed the connection: why");
    }
  }
  assert.equal(isCleanClose(null), false);
  assert.equal(closeCodeName(200), "code 200");
});

Deno.test("errorForClose() reports a cut connection, and takes the context of the caller", () => {
  const cut = errorForClose(null);
  assert.ok(cut instanceof ClosedError);
  assert.equal(cut.message, "Server closed the connection");
  const during = errorForClose(
    { code: CloseCode.idleTimeout, reason: "idle timeout" },
    "The server closed the connection during login",
  );
  assert.equal(
    during.message,
    "The server closed the connection during login: idle timeout",
  );
  const unknown = errorForClose({ code: 200, reason: "new code" });
  assert.ok(unknown instanceof ClosedError);
});

Deno.test("closeForError() maps each server error to its close code and back to the client's error", () => {
  const table: [unknown, CloseCodeValue | null, string | null][] = [
    [
      new LoginFailure("bob", "wrong password"),
      CloseCode.loginFailed,
      "login failed",
    ],
    [new LoginRequiredError(), CloseCode.loginRequired, "login required"],
    [
      new ProtocolError("bad record"),
      CloseCode.protocolError,
      "protocol error",
    ],
    [new FrameTooLargeError("big"), CloseCode.protocolError, "protocol error"],
    [new ConnectionError("reset"), null, null],
    [new Error("anything"), null, null],
    ["a string", null, null],
  ];
  for (const [error, code, reason] of table) {
    const close = closeForError(error);
    assert.deepEqual(
      close,
      code === null ? null : { code, reason },
      String(error),
    );
    if (close) {
      const back = errorForClose(close);
      assert.equal(
        back instanceof LoginRejectedError,
        error instanceof LoginRejectedError ||
          error instanceof LoginRequiredError,
      );
    }
  }
  assert.deepEqual(
    closeForError(new FrameTooLargeError("big"), { maxMessageBytes: 1024 }),
    {
      code: CloseCode.messageTooLarge,
      reason: "message larger than 1024 bytes",
    },
  );
});

Deno.test("nextMessageId() counts from 1 and wraps after 2^32 - 1 to 1, never 0", () => {
  assert.equal(FIRST_MESSAGE_ID, 1);
  assert.equal(MAX_MESSAGE_ID, 2 ** 32 - 1);
  assert.equal(nextMessageId(1), 2);
  assert.equal(nextMessageId(MAX_MESSAGE_ID - 1), MAX_MESSAGE_ID);
  assert.equal(nextMessageId(MAX_MESSAGE_ID), 1);
});

Deno.test("encodeMessageId() and splitMessageId() round-trip the u32, big-endian", () => {
  for (const id of [1, 2, 258, 0x7fff_ffff, 0x8000_0000, MAX_MESSAGE_ID]) {
    const bytes = encodeMessageId(id);
    assert.equal(bytes.length, 4);
    const body = new Uint8Array([...bytes, 104, 105]);
    const split = splitMessageId(body, "Message");
    assert.equal(split.id, id);
    assert.deepEqual([...split.data], [104, 105]);
  }
  assert.deepEqual([...encodeMessageId(258)], [0, 0, 1, 2]);
  assert.deepEqual([...encodeMessageId(MAX_MESSAGE_ID)], [255, 255, 255, 255]);
  assert.throws(
    () => splitMessageId(Uint8Array.of(0, 0, 1), "Confirmation"),
    (error: Error) =>
      error instanceof ProtocolError &&
      error.message === "Confirmation record too short",
  );
});

Deno.test("CLOSE_FLUSH_TIMEOUT_MS is one positive value", () => {
  assert.ok(CLOSE_FLUSH_TIMEOUT_MS > 0);
});
