"""Plain-English support tickets composed from a seed: varied enough to pass every filter.
Used where the teacher is not the test's subject (a scripted teacher, a stub API server)."""

from __future__ import annotations

import random

OPENINGS = ["Hi there,", "Hello,", "Good morning.", "Hey support team,", "To whom it may concern,",
            "Quick question.", "I need some help.", "Sorry to bother you again."]
PROBLEMS = ["my smart plug keeps dropping off the network every evening",
            "the app charged my card twice for the same monthly plan",
            "I cannot log in since I changed my phone number last week",
            "the parcel tracking page has not moved for nine days",
            "the refund for my returned camera never reached my account",
            "the dashboard shows yesterday's energy use as zero",
            "the developer key I created this morning is rejected with a 401",
            "the hub firmware update stopped halfway and now the light is red",
            "I was billed for Plus although I cancelled it in March",
            "the motion alerts arrive about twenty minutes late",
            "the password reset email never shows up in my inbox",
            "the box arrived with a cracked lid and a missing cable"]
DETAILS = ["I already restarted everything twice.", "It worked fine until the weekend.",
           "My neighbour has the same model and no issue.", "This is the third time I write.",
           "I attached a screenshot of the error.", "Order number is on the receipt.",
           "I am travelling until Friday, so email is best.", "Nothing changed on my side."]
ASKS = ["Can you tell me what to do next?", "Could someone look into it today?",
        "What are my options here?", "Please fix this or refund me.",
        "Is this a known problem?", "How long will this take to sort out?"]


def ticket(seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    problem = rng.choice(PROBLEMS)
    body = " ".join([rng.choice(OPENINGS), problem[0].upper() + problem[1:] + ".",
                     rng.choice(DETAILS), rng.choice(ASKS)])
    return {"subject": f"Ticket {seed}: {problem[:40]}", "body": body,
            "reply": f"Thanks for reaching out about this. {rng.choice(DETAILS)} We are "
                     f"looking into why {problem} and will write back within a day."}
