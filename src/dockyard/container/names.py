"""Generated container names: ``adjective_noun``, as Docker makes them,
from Dockyard's own (nautical) word lists."""

from __future__ import annotations

import secrets

ADJECTIVES = (
    "able", "agile", "amber", "ancient", "arctic", "azure", "balmy", "bold", "brave", "breezy",
    "bright", "brisk", "calm", "careful", "cheerful", "clever", "coastal", "cool", "crisp",
    "curious", "daring", "deep", "distant", "dry", "eager", "easy", "elated", "faithful", "fast",
    "fearless", "festive", "foggy", "gentle", "gifted", "golden", "grand", "happy", "hardy",
    "hidden", "humble", "icy", "jolly", "keen", "kind", "lively", "loyal", "lucky", "mellow",
    "merry", "mighty", "misty", "modest", "nimble", "noble", "northern", "patient", "plucky",
    "polar", "proud", "quiet", "rapid", "restless", "rugged", "salty", "serene", "sharp", "silent",
    "silver", "sleepy", "smooth", "snug", "sober", "southern", "spry", "stable", "steady", "stormy",
    "sturdy", "sunny", "swift", "tidal", "tranquil", "trusty", "vigilant", "vivid", "wandering",
    "warm", "wary", "weathered", "windy", "wise", "witty", "zealous",
)

NOUNS = (
    "anchor", "atoll", "ballast", "barge", "bay", "beacon", "berth", "bilge", "bollard", "bosun",
    "bow", "breakwater", "brig", "buoy", "cabin", "canal", "capstan", "cargo", "channel", "clipper",
    "compass", "coral", "cove", "crane", "crew", "current", "cutter", "davit", "deck", "dinghy",
    "dock", "drydock", "estuary", "ferry", "fjord", "flotilla", "foghorn", "frigate", "galley",
    "gangway", "gull", "hammock", "harbor", "hatch", "haven", "helm", "hull", "inlet", "island",
    "jetty", "keel", "ketch", "lagoon", "lantern", "lighthouse", "lock", "mast", "mooring",
    "narrows", "oar", "pier", "pilot", "port", "propeller", "quay", "reef", "rigging", "rudder",
    "sail", "schooner", "shoal", "skiff", "sloop", "sound", "spar", "starboard", "stern", "tide",
    "tiller", "trawler", "tugboat", "voyage", "wake", "wharf", "winch", "yacht", "yardarm",
)


def generate_name(retry: int = 0) -> str:
    """A random name; from the first retry on, a digit is appended (as
    Docker does) to make a second collision less likely."""
    name = f"{secrets.choice(ADJECTIVES)}_{secrets.choice(NOUNS)}"
    if retry > 0:
        name += str(secrets.randbelow(10))
    return name
