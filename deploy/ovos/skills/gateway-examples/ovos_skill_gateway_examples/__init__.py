"""Example skill installed next to the stock OVOS skills: what a gateway session exercises beyond a single
question and answer.

* "ask me my name" starts a two-turn dialog with `get_response`: the skill asks, the caller's next utterance
  is the answer ("bob"), then it says "Nice to meet you, bob."
* "repeat after me <words>" speaks the words back (a reply of known length, handy for tests and demos).
* "tell me a story" speaks a story of twelve sentences (a long reply: barge-in, hang-up mid-reply).

It declares that it needs no network, so ovos-core loads it offline.
"""

from __future__ import annotations

from typing import Any

from ovos_utils import classproperty
from ovos_utils.process_utils import RuntimeRequirements
from ovos_workshop.decorators import intent_handler
from ovos_workshop.skills import OVOSSkill


class GatewayExamplesSkill(OVOSSkill):
    @classproperty
    def runtime_requirements(self) -> RuntimeRequirements:
        return RuntimeRequirements(
            internet_before_load=False,
            network_before_load=False,
            gui_before_load=False,
            requires_internet=False,
            requires_network=False,
            requires_gui=False,
            no_internet_fallback=True,
            no_network_fallback=True,
            no_gui_fallback=True,
        )

    @intent_handler("ask.name.intent")
    def handle_ask_name(self, message: Any) -> None:
        name = self.get_response("what.is.your.name", num_retries=0)
        if name:
            self.speak_dialog("nice.to.meet.you", {"name": name})
        else:
            self.speak_dialog("no.name")

    @intent_handler("story.intent")
    def handle_story(self, message: Any) -> None:
        self.speak_dialog("story")

    @intent_handler("repeat.intent")
    def handle_repeat(self, message: Any) -> None:
        words = message.data.get("words", "")
        if words:
            self.speak(words)
        else:
            self.speak_dialog("nothing.to.repeat")
