// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import { createFeedbackClient } from "../src/client.js";
import { FeedbackError } from "../src/errors.js";
import { FeedbackThumbsElement, defineFeedbackThumbs } from "../src/widget.js";
import { FakePage, ScriptedSender, settle, stored } from "./fakes.js";

defineFeedbackThumbs();

function mount(attributes: Record<string, string> = {}) {
  const page = new FakePage();
  const sender = new ScriptedSender();
  sender.auto = stored;
  const element = document.createElement("feedback-thumbs") as FeedbackThumbsElement;
  for (const [name, value] of Object.entries({ "base-url": "http://127.0.0.1:8080", token: "fbt1.t", ...attributes })) {
    element.setAttribute(name, value);
  }
  element.client = createFeedbackClient({ baseUrl: "http://127.0.0.1:8080", sender: sender.send, environment: page });
  document.body.append(element);
  const shadow = element.shadowRoot!;
  const button = (selector: string) => shadow.querySelector<HTMLButtonElement>(selector)!;
  const pressed = () => [button("[data-vote=up]"), button("[data-vote=down]")].map((b) => b.getAttribute("aria-pressed"));
  const status = () => shadow.querySelector("[part~=status]")!.textContent;
  return { page, sender, element, shadow, button, pressed, status };
}

afterEach(() => {
  document.body.innerHTML = "";
});

describe("<feedback-thumbs>", () => {
  it("renders two toggle buttons in a labelled group, unpressed, themeable by custom properties", () => {
    const { shadow, pressed, button } = mount({ prompt: "Useful <b>answer</b>?" });
    const group = shadow.querySelector("[role=group]")!;
    expect(group.getAttribute("aria-label")).toBe("Useful <b>answer</b>?");
    expect(shadow.querySelector("[part~=prompt]")!.textContent).toBe("Useful <b>answer</b>?"); // text, not HTML
    expect(pressed()).toEqual(["false", "false"]);
    for (const vote of ["up", "down"]) {
      const element = button(`[data-vote=${vote}]`);
      expect(element.tagName).toBe("BUTTON"); // native buttons: Tab, Enter and Space work
      expect(element.getAttribute("type")).toBe("button");
    }
    expect(button("[data-vote=up]").textContent).toBe("Helpful");
    const style = shadow.querySelector("style")!.textContent!;
    for (const property of ["--feedback-accent", "--feedback-error", "--feedback-success", "--feedback-radius", "--feedback-font"]) {
      expect(style).toContain(property);
    }
    expect(shadow.querySelector("[part~=status]")!.getAttribute("aria-live")).toBe("polite");
    expect(shadow.querySelector("form")!.hidden).toBe(true);
    expect(shadow.querySelector<HTMLElement>("[part~=labels]")!.hidden).toBe(true);
  });

  it("sends a vote, shows sending then saved, and a changed vote replaces it", async () => {
    const { sender, element, button, pressed, status } = mount();
    const states: string[] = [];
    element.addEventListener("feedback-state", (event) => states.push((event as CustomEvent).detail.state));
    button("[data-vote=up]").click();
    expect(pressed()).toEqual(["true", "false"]);
    expect(element.getAttribute("state")).toBe("sending");
    await settle();
    expect(element.state).toBe("saved");
    expect(status()).toBe("Thanks, your feedback is saved.");
    button("[data-vote=down]").click();
    await settle();
    expect(pressed()).toEqual(["false", "true"]);
    button("[data-vote=down]").click(); // the same vote again: nothing to send
    await settle();
    expect(sender.calls.map((c) => [c.request.feedback?.key, c.request.feedback?.thumb, c.options.token])).toEqual([
      ["thumbs", "THUMB_UP", "fbt1.t"],
      ["thumbs", "THUMB_DOWN", "fbt1.t"],
    ]);
    expect(states).toEqual(["sending", "saved", "sending", "saved"]);
  });

  it("shows the server's message and field violations, and the buttons fall back to what is saved", async () => {
    const { sender, element, button, pressed, status } = mount();
    button("[data-vote=up]").click();
    await settle();
    sender.auto = () =>
      new FeedbackError("permission_denied", "this token does not allow a thumb", {
        fieldViolations: [{ field: "feedback.thumb", description: "not allowed" }],
      });
    button("[data-vote=down]").click();
    await settle();
    expect(element.state).toBe("error");
    expect(status()).toBe("Could not save: this token does not allow a thumb (feedback.thumb: not allowed)");
    expect(pressed()).toEqual(["true", "false"]);
  });

  it("shows queued while offline, then saved once the queued vote is sent", async () => {
    const { page, sender, element, button, status } = mount();
    page.offline = true;
    button("[data-vote=down]").click();
    await settle();
    expect(element.state).toBe("queued");
    expect(status()).toContain("offline");
    expect(sender.calls).toHaveLength(0);
    page.goOnline();
    await settle();
    expect(element.state).toBe("saved");
    expect(sender.calls).toHaveLength(1);
  });

  it("sends a comment together with the vote, once there is a vote", async () => {
    const { sender, shadow, button } = mount({ comment: "" });
    const form = shadow.querySelector("form")!;
    expect(form.hidden).toBe(false);
    expect(button("[part~=send]").disabled).toBe(true);
    button("[data-vote=down]").click();
    await settle();
    expect(button("[part~=send]").disabled).toBe(false);
    shadow.querySelector("textarea")!.value = "  the refund window is 30 days  ";
    button("[part~=send]").click();
    await settle();
    expect(sender.calls.map((c) => c.request.feedback)).toMatchObject([
      { key: "thumbs", thumb: "THUMB_DOWN" },
      { key: "thumbs", thumb: "THUMB_DOWN", comment: "the refund window is 30 days" },
    ]);
  });

  it("offers labels as toggle buttons that send label feedback under label-key", async () => {
    const { sender, shadow, element } = mount({ labels: "Wrong, Too long ,", "label-key": "why", key: "answer" });
    const chips = [...shadow.querySelectorAll<HTMLButtonElement>("[data-label]")];
    expect(chips.map((c) => c.textContent)).toEqual(["Wrong", "Too long"]);
    chips[1]!.click();
    await settle();
    expect(chips.map((c) => c.getAttribute("aria-pressed"))).toEqual(["false", "true"]);
    expect(sender.calls[0]!.request.feedback).toMatchObject({ key: "why", label: "Too long" });
    expect(element.state).toBe("saved");
  });

  it("starts over for a new token, and says what is missing without base-url or token", async () => {
    const { element, button, pressed } = mount();
    button("[data-vote=up]").click();
    await settle();
    element.setAttribute("token", "fbt1.next-answer");
    expect(pressed()).toEqual(["false", "false"]);
    expect(element.state).toBe("idle");
    element.removeAttribute("token");
    button("[data-vote=up]").click();
    expect(element.state).toBe("error");
    expect(element.shadowRoot!.querySelector("[part~=status]")!.textContent).toContain("base-url and token");
  });
});
