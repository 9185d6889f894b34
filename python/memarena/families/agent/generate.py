"""A seeded, offline generator of LongMemEval-shaped data (the schema of :mod:`.longmemeval`).

Each question has its own user. The user gets a persona: one value per
typed fact (home city, job, pet, hobby, partner, favourite food, car,
instrument) and relatives with names. The question's evidence is rendered
into user/assistant sessions with paraphrase templates (at least five per
fact type); the rest of the haystack is

* topic filler sessions (cooking, budgeting, code, travel...),
* persona sessions stating the user's *other* facts (evidence for other
  questions, not this one),
* near-miss distractors for the asked fact: a friend's value ("my friend
  Ana lives in Oslo"), plans not carried out ("I almost moved to Oslo, but
  it fell through") and negations ("I've never lived in Oslo").

Every session gets a distinct day; the haystack is in date order, as in
LongMemEval_S and _M. Evidence labels hold by construction, following the
benchmark's own sampler (``data/custom_history/sample_haystack_and_timestamp.py``):
evidence sessions are ``answer_<question>_<n>``, every turn of an evidence
session carries ``has_answer`` (true on the turns holding the evidence),
other sessions carry none and never contain ``answer`` in their id.

Question kinds, cycled in this order (``KINDS``):

========================  ===========================  ==========================================
kind                      question_type                evidence
========================  ===========================  ==========================================
single-session-user       single-session-user          one user turn stating a fact
single-session-assistant  single-session-assistant     one assistant turn (a recommendation)
single-session-preference single-session-preference    one user turn stating a preference
multi-session             multi-session                2-4 sessions, one counted item each
two-hop                   multi-session                "my sister Lena" + "Lena lives in Porto"
knowledge-update          knowledge-update             the old value's session, then the new one's
                                                       (``stale_session_ids``: the old one)
temporal-reasoning        temporal-reasoning           two dated events (days between, which first,
                                                       days ago)
abstention                single-session-user or       ``_abs``: asks a relative's fact never
                          temporal-reasoning           stated; the related evidence is labelled,
                                                       as in the released files
========================  ===========================  ==========================================

Sizes: ``oracle`` (the ``s`` haystack cut to its evidence sessions), ``s``
(50 sessions), ``m`` (500), or any number of sessions. Question ``i`` of a
seed depends only on ``(seed, i, size, session_words)``; the same arguments
give the same bytes.

**Session length** (``session_words``). The templates make short sessions
(1-6 exchanges, 21-186 words, ~95 on average), so a generated haystack has the released files'
number of sessions but a fraction of their text: LongMemEval_S holds ~115k
tokens in ~50 sessions and LongMemEval_M "500 sessions, ~1.5M tokens" (Wu
et al., "LongMemEval", ICLR 2025, arXiv 2410.10813), about 2.3k-3k tokens
(~1.7k-2.3k words) a session. ``session_words=N`` appends chat to every session, in
exchanges after its own turns, until it holds at least ``N``
whitespace-separated words: a user turn of 15-60 words and an assistant turn
of 60-240 (chat assistants answer at length), in a Zipf-distributed
vocabulary of 20,000 seeded pseudo-words (:func:`padding_vocabulary`; rank
``r`` drawn with weight ``1 / r``, as word frequencies in text roughly
are). The padding is volume, not meaning: it never states a persona fact
and holds no evidence (in an evidence session its turns carry
``has_answer: false``, as the sampler labels every turn of such a
session), and it comes from its own random stream, so ``session_words=0``
(the default) gives the same bytes as before the option existed.

    python -m memarena.families.agent.generate --size s --questions 60 --seed 0 --out F.json
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from memarena.errors import InvalidConfigError
from memarena.families.agent.longmemeval import Instance, Turn, save

__all__ = ["KINDS", "SIZES", "generate", "main", "num_sessions", "padding_vocabulary"]

#: Named sizes: sessions per haystack (``oracle`` keeps only the evidence of the ``s`` haystack).
SIZES: dict[str, int] = {"oracle": 50, "s": 50, "m": 500}
KINDS: tuple[str, ...] = (
    "single-session-user",
    "single-session-assistant",
    "single-session-preference",
    "multi-session",
    "two-hop",
    "knowledge-update",
    "temporal-reasoning",
    "abstention",
)
DATE_FORMAT = "%Y/%m/%d (%a) %H:%M"  # as the released files: "2023/05/30 (Tue) 23:40"
INSUFFICIENT = "The information provided is not enough."


# --------------------------------------------------------------------------------------------------
# Vocabulary


@dataclass(frozen=True)
class FactType:
    """One typed persona fact and every way of talking about it."""

    name: str
    values: tuple[str, ...]
    say: tuple[str, ...]  # the user states the fact ({v}); >= 5 paraphrases
    update: tuple[str, ...]  # the user states a changed value ({v})
    third: str  # a third person's version, after a name: "lives in {v}"
    plan: str  # the unrealised plan, after "I was": "thinking about moving to {v}"
    negation: tuple[str, ...]  # the user denies a value ({v})
    question: tuple[str, ...]  # asks the user's value
    relative_question: str | None  # asks a relative's value ({rel}); None: no relative version
    relative_missing: str  # abstention answer tail: "where your {rel} lives"
    asked_as: str = ""  # how the abstention answer restates the user's fact: "that you live in {v}"


FACTS: tuple[FactType, ...] = (
    FactType(
        "home_city",
        ("Lisbon", "Toronto", "Osaka", "Denver", "Edinburgh", "Melbourne", "Austin", "Vienna", "Seattle", "Porto"),
        (
            "I just moved to {v} last month and I'm still finding my way around.",
            "Living in {v} has been great so far, the neighbourhood is lovely.",
            "Since I live in {v} now, I take the tram almost everywhere.",
            "My apartment in {v} finally feels like home.",
            "I've settled into my new place in {v}.",
            "Now that I'm based in {v}, weekends are a lot more relaxed.",
        ),
        (
            "Big news: I relocated to {v} a couple of weeks ago.",
            "I've moved again, I live in {v} now.",
            "We finally packed up and moved to {v}.",
        ),
        "lives in {v}",
        "thinking about moving to {v}",
        ("I've never lived in {v}, even though people always assume so.", "I don't live in {v}, I only visit."),
        ("Which city do I live in?", "Where do I currently live?"),
        "Which city does my {rel} live in?",
        "where your {rel} lives",
        "that you live in {v}",
    ),
    FactType(
        "job",
        ("nurse", "software engineer", "teacher", "architect", "accountant", "pharmacist", "chef", "data analyst"),
        (
            "I work as a {v}, so my schedule is pretty packed.",
            "Being a {v} means I'm on my feet a lot.",
            "As a {v}, I rarely get a proper lunch break.",
            "My job as a {v} keeps me busy most weeks.",
            "I've been a {v} for a few years now.",
            "Work has been intense lately, that's life as a {v}.",
        ),
        (
            "I changed careers, I'm a {v} now.",
            "I started a new job as a {v} this week.",
            "I finally made the switch and now work as a {v}.",
        ),
        "works as a {v}",
        "planning to retrain as a {v}",
        ("I'm not a {v}, despite what people assume.", "I never worked as a {v}."),
        ("What do I do for a living?", "What is my job?"),
        "What does my {rel} do for a living?",
        "what your {rel} does for a living",
        "that you work as a {v}",
    ),
    FactType(
        "pet",
        ("beagle", "tabby cat", "parrot", "corgi", "rabbit", "golden retriever", "tortoise", "ferret"),
        (
            "My {v} woke me up at six again this morning.",
            "I adopted a {v} and it has changed my routine completely.",
            "I need to buy food for my {v} on the way home.",
            "Walking around with my {v} is the best part of my day.",
            "Our {v} has been a bit sick, so I've been worried.",
            "I got a {v} from the shelter and we're inseparable now.",
        ),
        (
            "We rehomed our old pet and now we have a {v}.",
            "The newest member of the family is a {v}.",
            "I have a {v} now.",
        ),
        "has a {v}",
        "about to adopt a {v}",
        ("I don't own a {v}, I just pet-sit one sometimes.", "I'd never keep a {v} in a flat."),
        ("What kind of pet do I have?", "What pet do I own?"),
        "What kind of pet does my {rel} have?",
        "what pet your {rel} has",
        "that you have a {v}",
    ),
    FactType(
        "hobby",
        ("rock climbing", "pottery", "birdwatching", "salsa dancing", "chess", "woodworking", "kayaking", "knitting"),
        (
            "I've really gotten into {v} lately, I do it every weekend.",
            "My favourite way to unwind is {v}.",
            "I spent the whole Saturday on {v} again.",
            "I picked up {v} as a hobby and I'm hooked.",
            "Nothing clears my head like {v}.",
            "I joined a club for {v}, which has been great.",
        ),
        (
            "These days my main hobby is {v}.",
            "I dropped my old hobby and took up {v}.",
            "My new obsession is {v}.",
        ),
        "is really into {v}",
        "going to try {v}",
        ("I'm not into {v} at all.", "I tried {v} once and never did it again."),
        ("What is my main hobby?", "What hobby do I spend my weekends on?"),
        "What is my {rel}'s hobby?",
        "what your {rel}'s hobby is",
        "that your hobby is {v}",
    ),
    FactType(
        "partner_name",
        ("Jordan", "Priya", "Mateo", "Hannah", "Kenji", "Amara", "Lucas", "Sofia"),
        (
            "My partner {v} and I are planning a weekend away.",
            "{v}, my partner, cooked dinner for us tonight.",
            "I've been with my partner {v} for three years.",
            "My partner is called {v} and loves board games.",
            "{v} and I, we've been together a while, just adopted a new routine of Sunday walks.",
        ),
        ("I'm seeing someone new, their name is {v}.", "My new partner {v} is wonderful."),
        "is dating {v}",
        "going to set up a date with {v}",
        ("I'm not dating {v}, we're just colleagues.", "{v} isn't my partner, just an old friend."),
        ("What is my partner's name?", "Who is my partner?"),
        None,
        "",
        "that your partner is {v}",
    ),
    FactType(
        "favourite_food",
        ("ramen", "paella", "tacos", "mushroom risotto", "pho", "lasagna", "shakshuka", "sushi"),
        (
            "My favourite food is {v}, I could eat it every day.",
            "Nothing beats a bowl of {v} after a long day.",
            "I always order {v} when we eat out.",
            "If I had to pick one dish forever, it'd be {v}.",
            "I made {v} again tonight, it's my absolute favourite.",
        ),
        ("Honestly my favourite dish these days is {v}.", "I've switched favourites, it's {v} now."),
        "loves {v}",
        "going to learn to cook {v}",
        ("I don't like {v} much.", "I'm not a fan of {v}, too heavy for me."),
        ("What is my favourite food?", "Which dish do I like most?"),
        "What is my {rel}'s favourite food?",
        "what your {rel}'s favourite food is",
        "that your favourite food is {v}",
    ),
    FactType(
        "car",
        ("Honda Civic", "Subaru Outback", "Tesla Model 3", "Volkswagen Golf", "Toyota Prius", "Mazda CX-5"),
        (
            "I drive a {v}, and it's been reliable.",
            "My {v} needs new tyres before winter.",
            "I took my {v} in for a service today.",
            "I love my {v}, it's cheap to run.",
            "I bought a used {v} a while back.",
        ),
        ("I traded in my old car, I drive a {v} now.", "I just got a {v}."),
        "drives a {v}",
        "about to buy a {v}",
        ("I don't drive a {v}.", "I'd never buy a {v}."),
        ("What car do I drive?", "Which car do I own?"),
        "What car does my {rel} drive?",
        "what car your {rel} drives",
        "that you drive a {v}",
    ),
    FactType(
        "instrument",
        ("cello", "ukulele", "piano", "drums", "violin", "saxophone", "banjo"),
        (
            "I practise the {v} every evening.",
            "I've been learning the {v} for about a year.",
            "My {v} teacher says I'm improving.",
            "I played the {v} at a friend's party last night.",
            "I finally bought my own {v}.",
        ),
        ("I gave up my old instrument and now play the {v}.", "I switched to the {v}."),
        "plays the {v}",
        "going to take {v} lessons",
        ("I don't play the {v}.", "I never learned the {v}."),
        ("Which instrument do I play?", "What instrument am I learning?"),
        "Which instrument does my {rel} play?",
        "which instrument your {rel} plays",
        "that you play the {v}",
    ),
)
FACT_BY_NAME = {f.name: f for f in FACTS}
RELATIVES = ("sister", "brother", "cousin", "aunt", "uncle", "best friend", "neighbour")
NAMES = (
    "Lena", "Omar", "Grace", "Tomas", "Yuki", "Nadia", "Felix", "Ines", "Rahul", "Chloe", "Diego", "Mei",
    "Elena", "Samir", "Ruth", "Viktor", "Aisha", "Bruno", "Clara", "Hugo",
)  # fmt: skip
PLAN_TEMPLATES = (
    "I was {plan} for a while, but in the end it didn't happen.",
    "For a moment I was {plan}, then I changed my mind.",
    "Last year I was {plan}, but that plan fell through.",
)
FRIEND_TEMPLATES = (
    "My friend {name} {third}, which always surprises people.",
    "I was chatting with {name}, who {third}.",
    "A colleague of mine, {name}, {third}.",
)
RELATION_TEMPLATES = (
    "My {rel} {name} is coming to visit this weekend.",
    "I had lunch with my {rel}, {name}, today.",
    "{name}, my {rel}, called me last night.",
    "I'm helping my {rel} {name} with a move.",
    "My {rel} is {name}, we talk almost every day.",
)
RELATIVE_FACT_TEMPLATES = (
    "By the way, {name} {third} now.",
    "Funny thing: {name} {third}.",
    "I learned that {name} {third}.",
    "{name} told me again that they {third_plain}.",
    "Did I mention {name} {third}?",
)


@dataclass(frozen=True)
class Recommendation:
    category: str
    items: tuple[str, ...]


RECOMMENDATIONS = (
    Recommendation("book", ("The Overstory", "Piranesi", "Project Hail Mary", "Circe", "The Remains of the Day")),
    Recommendation("podcast", ("Hidden Brain", "Radiolab", "99% Invisible", "Planet Money", "Song Exploder")),
    Recommendation("board game", ("Wingspan", "Azul", "Carcassonne", "Ticket to Ride", "Codenames")),
    Recommendation("hiking trail", ("the Skyline Loop", "Cedar Ridge", "the Falls Trail", "Eagle Point")),
    Recommendation("documentary", ("My Octopus Teacher", "Free Solo", "Jiro Dreams of Sushi", "Honeyland")),
)
ASK_RECOMMENDATION = (
    "Can you recommend a good {category} for me?",
    "I'm looking for a new {category}. Any suggestions?",
    "What {category} would you suggest right now?",
    "Could you point me to a {category} worth trying?",
    "I need a {category} recommendation, what do you think?",
)
GIVE_RECOMMENDATION = (
    "I'd recommend {item}. Many people find it memorable.",
    "You might enjoy {item}; it's a popular choice.",
    "Try {item}. It's well loved and easy to get into.",
    "My suggestion would be {item}.",
    "How about {item}? It comes up in a lot of favourite lists.",
)
QUESTION_RECOMMENDATION = (
    "Which {category} did you recommend to me in our earlier chat?",
    "What was the {category} you suggested to me before?",
)


@dataclass(frozen=True)
class Preference:
    topic: str  # what the question asks help with
    statements: tuple[str, ...]  # >= 5
    request: tuple[str, ...]
    rubric: str


PREFERENCES = (
    Preference(
        "dinner",
        (
            "I've been vegetarian for years, so meat dishes are out for me.",
            "I don't eat meat at all, I stick to vegetarian meals.",
            "As a vegetarian, I'm always hunting for hearty plant-based recipes.",
            "Vegetarian food is all I cook at home.",
            "I only eat vegetarian dishes, and I love spicy ones.",
        ),
        ("Can you suggest a recipe for dinner tonight?", "What should I cook this evening?"),
        "The user would prefer vegetarian dinner suggestions, ideally hearty or spicy plant-based dishes.",
    ),
    Preference(
        "holiday",
        (
            "I hate crowded tourist spots, I always travel off-season.",
            "Quiet places in the off-season are my kind of holiday.",
            "Crowds stress me out, so I pick calm destinations out of peak season.",
            "My ideal trip is somewhere peaceful, away from the tourist rush.",
            "I always book trips for the shoulder season to avoid the crowds.",
        ),
        ("Any ideas for my next holiday?", "Where should I travel next?"),
        "The user would prefer quiet, uncrowded destinations visited off-season.",
    ),
    Preference(
        "music",
        (
            "Jazz is what I listen to most, especially old vinyl records.",
            "I'm a huge jazz fan, give me a saxophone solo any day.",
            "My playlists are almost all jazz.",
            "I unwind with jazz every evening.",
            "Live jazz clubs are my favourite night out.",
        ),
        ("Can you recommend something to listen to tonight?", "What music should I put on?"),
        "The user would prefer jazz recommendations, such as classic jazz albums or live recordings.",
    ),
    Preference(
        "workout",
        (
            "I can't stand running, I much prefer swimming for exercise.",
            "Swimming is my favourite workout, it's easy on my knees.",
            "I do laps at the pool three times a week and love it.",
            "For exercise I always choose swimming over the gym.",
            "Low-impact exercise like swimming suits me best.",
        ),
        ("Can you suggest a workout plan for this week?", "How should I exercise this week?"),
        "The user would prefer a low-impact plan built around swimming rather than running.",
    ),
    Preference(
        "coffee",
        (
            "I only drink oat milk lattes, dairy doesn't agree with me.",
            "Oat milk in my coffee, always, I'm lactose intolerant.",
            "My go-to order is an oat latte, no dairy.",
            "I switched to oat milk in all my coffee.",
            "I avoid dairy, so my coffee is always made with oat milk.",
        ),
        ("What coffee drink should I try at the new cafe?", "Can you suggest a coffee to order?"),
        "The user would prefer dairy-free coffee drinks made with oat milk.",
    ),
)


@dataclass(frozen=True)
class Collection:
    noun: str  # "plants"
    verb: str  # "bought"
    verb_base: str  # "buy"
    items: tuple[str, ...]
    say: tuple[str, ...]  # >= 5, {item}
    almost: str  # a plan not carried out, {item}


COLLECTIONS = (
    Collection(
        "plants",
        "bought",
        "buy",
        ("a fiddle-leaf fig", "a snake plant", "a monstera", "a pothos", "an olive tree", "a peace lily"),
        (
            "I bought {item} at the garden centre today.",
            "Just brought home {item} for the living room.",
            "I picked up {item} on my way back from work.",
            "My collection grew again, I bought {item}.",
            "I treated myself and bought {item}.",
        ),
        "I almost bought {item}, but I put it back.",
    ),
    Collection(
        "books",
        "finished",
        "finish",
        ("'Middlemarch'", "'Dune'", "'Beloved'", "'Educated'", "'Normal People'", "'The Road'"),
        (
            "I finished {item} last night, what an ending.",
            "Just finished reading {item}.",
            "I finally finished {item} on the train.",
            "Finished {item} this weekend, highly recommend it.",
            "I stayed up late and finished {item}.",
        ),
        "I started {item} but gave up halfway.",
    ),
    Collection(
        "races",
        "run",
        "run",
        ("a 5k charity run", "a trail half marathon", "a night 10k", "a beach 5k", "the city marathon"),
        (
            "I ran {item} this morning and I'm exhausted.",
            "Crossed the finish line of {item} today!",
            "I completed {item}, slower than I hoped.",
            "Today I ran {item} with my running club.",
            "Just got back from running {item}.",
        ),
        "I signed up for {item} but didn't end up running it.",
    ),
    Collection(
        "cooking classes",
        "taken",
        "take",
        ("a pasta-making class", "a knife-skills class", "a sourdough class", "a Thai curry class", "a dim sum class"),
        (
            "I took {item} today and learned a ton.",
            "Spent the evening at {item}.",
            "I went to {item} at the community kitchen.",
            "Took {item} with a friend this afternoon.",
            "Just finished {item}, my hands still smell of garlic.",
        ),
        "I nearly booked {item}, but it was full.",
    ),
)


EVENTS = (
    "adopted a kitten",
    "started pottery classes",
    "repainted the kitchen",
    "ran a half marathon",
    "passed a driving test",
    "planted a vegetable garden",
    "joined a choir",
    "booked a trip to Iceland",
    "started a new job",
    "bought a road bike",
)
EVENT_TEMPLATES = (
    "Today I {event}, and I'm so happy about it.",
    "Big day: I {event} this morning!",
    "Just wanted to share that I {event} today.",
    "I finally {event} today.",
    "Guess what, I {event} today.",
)

# Topic filler: the user asks for help with a topic, the assistant answers with generic tips.
TOPICS = (
    "meal prepping", "budgeting", "learning Spanish", "writing a cover letter", "improving sleep",
    "organising a closet", "Python list comprehensions", "SQL joins", "time management", "public speaking",
    "composting", "fixing a leaky tap", "photography basics", "starting a blog", "stretching after work",
    "saving for retirement", "making cold brew", "choosing a laptop", "learning to juggle", "negotiating salary",
)  # fmt: skip
USER_TOPIC = (
    "Can you give me some tips on {topic}?",
    "I'm trying to get better at {topic}. Where should I start?",
    "What are common mistakes people make with {topic}?",
    "I have a question about {topic}, is it hard to get right?",
    "How much time should I spend on {topic} each week?",
    "Could you explain the basics of {topic}?",
)
USER_FOLLOWUP = (
    "That helps, thanks. What about doing it on a tight schedule?",
    "Interesting. Is there anything I should avoid?",
    "Could you give me a concrete example?",
    "How would I know if I'm making progress?",
    "Thanks! Can you summarise that in three steps?",
)
ASSISTANT_TOPIC = (
    "Sure! For {topic}, {tip_lc} It also helps to {tip2}",
    "Good question. A reliable approach to {topic}: {tip}",
    "Many people start {topic} by keeping it simple. {tip} Also, {tip2_lc}",
    "Here's what tends to work: {tip} Over time, {tip2_lc}",
    "With {topic}, consistency matters more than intensity. {tip}",
    "{tip} That's the core of {topic}; the rest is practice.",
)
TIPS = (
    "start with small, regular sessions.",
    "write down a plan before you begin.",
    "track what you do in a simple notebook.",
    "review your progress every Sunday.",
    "focus on one change at a time.",
    "set a timer and stop when it rings.",
    "ask someone experienced to look at your work.",
    "keep the tools you need within reach.",
    "break the task into steps of ten minutes.",
    "reward yourself after each milestone.",
    "avoid multitasking while you practise.",
    "read one good guide rather than ten average ones.",
)
ACKS = (
    "Thanks for sharing that! How can I help today?",
    "That sounds lovely. What would you like to talk about?",
    "Good to know! Let me know what you need.",
    "Noted. What can I do for you?",
    "How nice! What's on your mind?",
)


# --------------------------------------------------------------------------------------------------
# Building blocks


@dataclass
class _Session:
    """A session under construction. ``evidence`` sessions become ``answer_...`` with labelled turns."""

    turns: list[Turn]
    evidence: bool = False


@dataclass
class _Question:
    question: str
    answer: str
    question_type: str
    evidence: list[_Session]  # in the order they must appear in time when ``ordered``
    ordered: bool
    avoid: set[str] = field(default_factory=set)  # fact types the filler must not state
    distract: str | None = None  # the fact type whose near misses fill some sessions
    abstention: bool = False
    taken: set[str] = field(default_factory=set)  # values of ``distract`` that near misses must not use
    # answer computed from the evidence dates once they are fixed (temporal questions)
    finish: Callable[[list[datetime], datetime], tuple[str, str]] | None = None


@dataclass
class _Persona:
    facts: dict[str, str]
    names: list[str]  # unused names for friends and relatives


def _persona(rng: random.Random) -> _Persona:
    return _Persona({f.name: rng.choice(f.values) for f in FACTS}, rng.sample(NAMES, len(NAMES)))


def _other(rng: random.Random, values: Sequence[str], *exclude: str) -> str:
    return rng.choice([v for v in values if v not in exclude])


def _chat(rng: random.Random, pairs: int, topic: str | None = None) -> list[Turn]:
    """``pairs`` user/assistant exchanges about one filler topic."""
    topic = topic or rng.choice(TOPICS)
    turns: list[Turn] = []
    for p in range(pairs):
        user = rng.choice(USER_TOPIC if p == 0 else USER_FOLLOWUP).format(topic=topic)
        tip, tip2 = rng.sample(TIPS, 2)
        assistant = rng.choice(ASSISTANT_TOPIC).format(
            topic=topic, tip=tip.capitalize(), tip_lc=tip, tip2=tip2, tip2_lc=tip2
        )
        turns += [Turn("user", user), Turn("assistant", assistant)]
    return turns


def _with_statement(rng: random.Random, sentence: str, *, evidence: bool) -> _Session:
    """A session whose user states ``sentence`` in one turn (labelled if ``evidence``), amid topic chat."""
    turns = _chat(rng, rng.randint(2, 5))
    at = 2 * rng.randrange(len(turns) // 2)
    if rng.random() < 0.5:
        content = f"{sentence} {turns[at].content}"
        turns[at] = Turn("user", content, True if evidence else None)
    else:  # a turn of its own, acknowledged by the assistant
        turns[at:at] = [Turn("user", sentence, True if evidence else None), Turn("assistant", rng.choice(ACKS))]
    if evidence:
        turns = [t if t.has_answer else Turn(t.role, t.content, False) for t in turns]
    return _Session(turns, evidence)


def _say(rng: random.Random, fact: FactType, value: str, *, evidence: bool, update: bool = False) -> _Session:
    template = rng.choice(fact.update if update else fact.say)
    return _with_statement(rng, template.format(v=value), evidence=evidence)


def _third_plain(third: str) -> str:
    # "lives in X" -> "live in X", for "they ..." (a crude but sufficient verb fix for the templates)
    head, _, rest = third.partition(" ")
    plain = {"lives": "live", "works": "work", "has": "have", "is": "are", "loves": "love", "drives": "drive"}
    return " ".join(filter(None, [plain.get(head, head.removesuffix("s")), rest]))


# --------------------------------------------------------------------------------------------------
# Question kinds


def _single_session_user(rng: random.Random, persona: _Persona) -> _Question:
    fact = rng.choice(FACTS)
    value = persona.facts[fact.name]
    session = _say(rng, fact, value, evidence=True)
    return _Question(rng.choice(fact.question), value, "single-session-user", [session], False, {fact.name}, fact.name)


def _single_session_assistant(rng: random.Random, persona: _Persona) -> _Question:
    rec = rng.choice(RECOMMENDATIONS)
    item = rng.choice(rec.items)
    turns = _chat(rng, rng.randint(1, 4))
    at = 2 * rng.randrange(len(turns) // 2 + 1)
    turns[at:at] = [
        Turn("user", rng.choice(ASK_RECOMMENDATION).format(category=rec.category)),
        Turn("assistant", rng.choice(GIVE_RECOMMENDATION).format(item=item), True),
    ]
    turns = [t if t.has_answer else Turn(t.role, t.content, False) for t in turns]
    question = rng.choice(QUESTION_RECOMMENDATION).format(category=rec.category)
    return _Question(question, item, "single-session-assistant", [_Session(turns, True)], False)


def _single_session_preference(rng: random.Random, persona: _Persona) -> _Question:
    pref = rng.choice(PREFERENCES)
    session = _with_statement(rng, rng.choice(pref.statements), evidence=True)
    return _Question(rng.choice(pref.request), pref.rubric, "single-session-preference", [session], False)


def _multi_session(rng: random.Random, persona: _Persona) -> _Question:
    coll = rng.choice(COLLECTIONS)
    n = rng.randint(2, 4)
    items = rng.sample(coll.items, n + 1)
    sessions = [_with_statement(rng, rng.choice(coll.say).format(item=it), evidence=True) for it in items[:n]]
    # the plan not carried out rides along in the last evidence session's chat, unlabelled
    sessions[-1].turns += [
        Turn("user", coll.almost.format(item=items[n]), False),
        Turn("assistant", rng.choice(ACKS), False),
    ]
    question = rng.choice(
        (f"How many {coll.noun} have I {coll.verb} so far?", f"In total, how many {coll.noun} did I {coll.verb_base}?")
    )
    return _Question(question, f"{n}", "multi-session", sessions, False)


def _two_hop(rng: random.Random, persona: _Persona) -> _Question:
    fact = rng.choice([f for f in FACTS if f.relative_question])
    rel = rng.choice(RELATIVES)
    name = persona.names.pop()
    value = _other(rng, fact.values, persona.facts[fact.name])
    intro = rng.choice(RELATION_TEMPLATES).format(rel=rel, name=name)
    third = fact.third.format(v=value)
    stated = rng.choice(RELATIVE_FACT_TEMPLATES).format(name=name, third=third, third_plain=_third_plain(third))
    sessions = [_with_statement(rng, intro, evidence=True), _with_statement(rng, stated, evidence=True)]
    question = (fact.relative_question or "").format(rel=rel)
    return _Question(question, value, "multi-session", sessions, True, {fact.name}, fact.name, taken={value})


def _knowledge_update(rng: random.Random, persona: _Persona) -> _Question:
    fact = rng.choice([f for f in FACTS if f.name != "partner_name"])
    old = _other(rng, fact.values, persona.facts[fact.name])
    new = persona.facts[fact.name]
    sessions = [_say(rng, fact, old, evidence=True), _say(rng, fact, new, evidence=True, update=True)]
    question = rng.choice(fact.question)
    return _Question(question, new, "knowledge-update", sessions, True, {fact.name}, fact.name, taken={old})


def _temporal(rng: random.Random, persona: _Persona) -> _Question:
    first, second = rng.sample(EVENTS, 2)
    sessions = [
        _with_statement(rng, rng.choice(EVENT_TEMPLATES).format(event=e), evidence=True) for e in (first, second)
    ]
    variant = rng.randrange(3)

    def finish(dates: list[datetime], asked: datetime) -> tuple[str, str]:
        d1, d2 = (d.date() for d in dates)
        if variant == 0:
            return (
                f"How many days passed between the day I {first} and the day I {second}?",
                f"{(d2 - d1).days} days",
            )
        if variant == 1:
            a, b = (first, second) if rng.random() < 0.5 else (second, first)
            return f"Which happened first: I {a}, or I {b}?", f"You {first} first."
        return f"How many days ago did I {second}?", f"{(asked.date() - d2).days} days ago"

    return _Question("", "", "temporal-reasoning", sessions, True, finish=finish)


def _abstention(rng: random.Random, persona: _Persona) -> _Question:
    """A question about something never said, beside related evidence that *is* said.

    As in the released files (abstention questions keep the evidence of the
    question they were derived from): the related sessions are labelled.
    """
    if rng.random() < 0.5:
        fact = rng.choice([f for f in FACTS if f.relative_question])
        value = persona.facts[fact.name]
        rel = rng.choice(RELATIVES)
        session = _say(rng, fact, value, evidence=True)
        question = (fact.relative_question or "").format(rel=rel)
        answer = (
            f"{INSUFFICIENT} You mentioned {fact.asked_as.format(v=value)}, "
            f"but not {fact.relative_missing.format(rel=rel)}."
        )
        return _Question(question, answer, "single-session-user", [session], False, {fact.name}, fact.name, True)
    said, never = rng.sample(EVENTS, 2)
    session = _with_statement(rng, rng.choice(EVENT_TEMPLATES).format(event=said), evidence=True)
    question = f"How many days passed between the day I {said} and the day I {never}?"
    answer = f"{INSUFFICIENT} You mentioned that you {said}, but not that you {never}."
    return _Question(question, answer, "temporal-reasoning", [session], False, abstention=True)


_BUILDERS: dict[str, Callable[[random.Random, _Persona], _Question]] = {
    "single-session-user": _single_session_user,
    "single-session-assistant": _single_session_assistant,
    "single-session-preference": _single_session_preference,
    "multi-session": _multi_session,
    "two-hop": _two_hop,
    "knowledge-update": _knowledge_update,
    "temporal-reasoning": _temporal,
    "abstention": _abstention,
}


# --------------------------------------------------------------------------------------------------
# Haystack


def _distractor(rng: random.Random, persona: _Persona, fact: FactType, taken: set[str]) -> _Session:
    """A near miss for ``fact``: a friend's value, a plan not carried out, or a negation."""
    value = _other(rng, fact.values, persona.facts[fact.name], *sorted(taken))
    kind = rng.randrange(3)
    if kind == 0:
        name = rng.choice(persona.names)
        sentence = rng.choice(FRIEND_TEMPLATES).format(name=name, third=fact.third.format(v=value))
    elif kind == 1:
        sentence = rng.choice(PLAN_TEMPLATES).format(plan=fact.plan.format(v=value))
    else:
        sentence = rng.choice(fact.negation).format(v=value)
    return _with_statement(rng, sentence, evidence=False)


def _filler(rng: random.Random, persona: _Persona, q: _Question, count: int) -> list[_Session]:
    allowed = [f for f in FACTS if f.name not in q.avoid]
    out: list[_Session] = []
    for _ in range(count):
        r = rng.random()
        if q.distract is not None and r < 0.15:
            out.append(_distractor(rng, persona, FACT_BY_NAME[q.distract], q.taken))
        elif r < 0.35 and allowed:
            fact = rng.choice(allowed)
            out.append(_say(rng, fact, persona.facts[fact.name], evidence=False))
        else:
            out.append(_Session(_chat(rng, rng.randint(1, 5))))
    return out


#: Pseudo-words in the padding vocabulary, and the ranges of words in a padding exchange's user and assistant turn.
PADDING_VOCABULARY = 20_000
PADDING_USER_WORDS = (15, 60)
PADDING_ASSISTANT_WORDS = (60, 240)
_SYLLABLES = tuple(c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou")  # consonant-vowel: no word ends in a consonant


@lru_cache(maxsize=1)
def padding_vocabulary() -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The padding's words (distinct, lowercase, 2-4 syllables, from a fixed seed) and their Zipf cumulative weights.

    Word ``r`` (0-based) has weight ``1 / (r + 1)``; ``cum_weights`` for :meth:`random.Random.choices`.
    """
    rng = random.Random("memarena-agent:padding-vocabulary")
    words: dict[str, None] = {}
    while len(words) < PADDING_VOCABULARY:
        words["".join(rng.choices(_SYLLABLES, k=rng.randint(2, 4)))] = None
    return tuple(words), tuple(itertools.accumulate(1.0 / r for r in range(1, PADDING_VOCABULARY + 1)))


def _words(turns: Sequence[Turn]) -> int:
    return sum(len(t.content.split()) for t in turns)


def _pad(rng: random.Random, turns: list[Turn], evidence: bool, session_words: int) -> list[Turn]:
    """``turns`` followed by padding exchanges until they hold at least ``session_words`` words."""
    words, cum = padding_vocabulary()
    out = list(turns)
    have = _words(out)
    label = False if evidence else None
    while have < session_words:
        user = rng.choices(words, cum_weights=cum, k=rng.randint(*PADDING_USER_WORDS))
        assistant = rng.choices(words, cum_weights=cum, k=rng.randint(*PADDING_ASSISTANT_WORDS))
        out += [Turn("user", " ".join(user) + "?", label), Turn("assistant", " ".join(assistant) + ".", label)]
        have += len(user) + len(assistant)
    return out


def num_sessions(size: str | int) -> int:
    """Sessions per haystack for ``size`` (``oracle``, ``s``, ``m`` or a positive number)."""
    if isinstance(size, bool):
        raise InvalidConfigError(f"size must be one of {sorted(SIZES)} or a positive number of sessions, got {size!r}")
    if isinstance(size, int):
        n = size
    elif size in SIZES:
        return SIZES[size]
    else:
        try:
            n = int(size)
        except ValueError:
            raise InvalidConfigError(
                f"size must be one of {sorted(SIZES)} or a positive number of sessions, got {size!r}"
            ) from None
    if n < 1:
        raise InvalidConfigError(f"size must be a positive number of sessions, got {n}")
    return n


def _question(seed: int, index: int, size: str | int, session_words: int = 0) -> Instance:
    n_sessions = num_sessions(size)
    # A string seed goes through SHA-512 in random.seed, so it does not depend on PYTHONHASHSEED.
    rng = random.Random(f"memarena-agent:{seed}:{index}:{n_sessions}")
    persona = _persona(rng)
    kind = KINDS[index % len(KINDS)]
    q = _BUILDERS[kind](rng, persona)
    fillers = _filler(rng, persona, q, max(0, n_sessions - len(q.evidence)))
    total = len(fillers) + len(q.evidence)

    # Place the evidence among the fillers; ordered evidence keeps its order.
    slots = sorted(rng.sample(range(total), len(q.evidence)))
    evidence = list(q.evidence)
    if not q.ordered:
        rng.shuffle(evidence)
    rng.shuffle(fillers)
    placed: list[_Session] = []
    it_e, it_f = iter(evidence), iter(fillers)
    slot_set = set(slots)
    for i in range(total):
        placed.append(next(it_e) if i in slot_set else next(it_f))

    # One distinct day per session, in order; the question comes after the last.
    start = datetime(2022, 1, 1) + timedelta(days=rng.randrange(365))
    span_days = 2 * total + 30
    days = sorted(rng.sample(range(span_days), total))
    dates = [start + timedelta(days=d, minutes=rng.randrange(24 * 60)) for d in days]
    asked = dates[-1] + timedelta(days=rng.randint(1, 30), minutes=rng.randrange(24 * 60))

    digest = hashlib.sha256(f"{seed}:{index}".encode()).hexdigest()
    qid = digest[:8]
    session_ids: list[str] = []
    evidence_dates: list[datetime] = []
    n_evidence = 0
    for i, s in enumerate(placed):
        if s.evidence:
            n_evidence += 1
            session_ids.append(f"answer_{qid}_{n_evidence}")
            evidence_dates.append(dates[i])
        else:  # hex digits and '_' only: never contains "answer"
            session_ids.append(f"{hashlib.sha256(f'{seed}:{index}:{i}'.encode()).hexdigest()[:8]}_{i + 1}")

    question, answer = q.question, q.answer
    if q.finish is not None:
        question, answer = q.finish(evidence_dates, asked)
    keep = [i for i, s in enumerate(placed) if s.evidence] if size == "oracle" else range(total)
    if session_words > 0:  # its own stream: the rest of the question is the same with or without padding
        pad = random.Random(f"memarena-agent:{seed}:{index}:{n_sessions}:pad")
        for i in range(total):
            placed[i] = _Session(_pad(pad, placed[i].turns, placed[i].evidence, session_words), placed[i].evidence)
    return Instance(
        question_id=qid + ("_abs" if q.abstention else ""),
        question_type=q.question_type,
        question=question,
        answer=answer,
        question_date=asked.strftime(DATE_FORMAT),
        haystack_session_ids=tuple(session_ids[i] for i in keep),
        haystack_dates=tuple(dates[i].strftime(DATE_FORMAT) for i in keep),
        haystack_sessions=tuple(tuple(placed[i].turns) for i in keep),
        answer_session_ids=tuple(sid for sid in session_ids if sid.startswith("answer_")),
        # knowledge-update: the old value's session comes first in time, so it is answer_<qid>_1
        stale_session_ids=(f"answer_{qid}_1",) if q.question_type == "knowledge-update" else (),
    )


def generate(*, size: str | int = "s", questions: int = 60, seed: int = 0, session_words: int = 0) -> list[Instance]:
    """``questions`` instances with ``size`` sessions each (see the module docstring), deterministic in ``seed``.

    Question ``i`` has kind ``KINDS[i % len(KINDS)]``; 8 questions cover every kind. ``session_words > 0``
    pads every session to at least that many words (the module docstring's "Session length").
    """
    num_sessions(size)
    if questions < 0:
        raise InvalidConfigError(f"questions must be >= 0, got {questions}")
    if isinstance(session_words, bool) or not isinstance(session_words, int) or session_words < 0:
        raise InvalidConfigError(f"session_words must be a whole number >= 0, got {session_words!r}")
    return [_question(seed, i, size, session_words) for i in range(questions)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m memarena.families.agent.generate",
        description="Write a LongMemEval-shaped JSON file of generated questions (offline, seeded).",
    )
    parser.add_argument("--size", default="s", help="oracle, s (50 sessions), m (500) or a number of sessions")
    parser.add_argument("--questions", type=int, default=60, help="number of questions (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--session-words", type=int, default=0, help="pad every session to at least this many words (default 0: none)"
    )
    parser.add_argument("--out", required=True, help="the JSON file to write")
    args = parser.parse_args(argv)
    size: str | int = args.size
    try:
        instances = generate(size=size, questions=args.questions, seed=args.seed, session_words=args.session_words)
    except InvalidConfigError as exc:
        parser.error(str(exc))
    path = save(instances, args.out)
    print(f"wrote {len(instances)} questions ({num_sessions(size)} sessions each) to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
