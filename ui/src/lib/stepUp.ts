import type { AppError } from "../errors";
import type { Result } from "../ipc";

/**
 * Asks the person for a fresh authenticator code and verifies it with the tenant. Resolves true
 * once the session is stepped up, false when they cancelled. A wrong code is shown in the prompt
 * and asked again, so it never reaches the caller.
 */
export type StepUpPrompt = () => Promise<boolean>;

/**
 * Runs an admin action; when the tenant answers `mfa_required` (the session's MFA verification
 * is not recent), asks for a code in place and repeats the same action with the same arguments,
 * so nothing typed into the form is lost. Gives up after two step-ups that did not satisfy the
 * tenant (a clock far off, say) and returns its last answer.
 */
export async function withStepUp<T>(action: () => Promise<Result<T>>, prompt: StepUpPrompt): Promise<Result<T>> {
  let result = await action();
  for (let attempt = 0; attempt < 2 && !result.ok && result.error.code === "mfa_required"; attempt++) {
    const stepped = await prompt();
    if (!stepped) return { ok: false, error: cancelled(result.error) };
    result = await action();
  }
  return result;
}

function cancelled(cause: AppError): AppError {
  return { code: "cancelled", message: `Not done: a current authenticator code is needed. (${cause.message})` };
}
