"""Is a word a verb? A lexicon of common English verbs, for ``words:start_verb``.

Why a lexicon: the reference tags the response's first token with NLTK's averaged-perceptron
tagger (any ``VB*`` tag counts), a trained model that is downloaded at run time and so is not
available here. A response that starts with a verb nearly always starts with a common one in its
base form (an imperative: "Imagine", "Consider", "Let's"), a form of *be* / *have* / *do* (a
question: "Is ...", "Have you ...") or an -ing form ("Looking back, ...") or an -ed form of a
listed verb; third-person
forms ("Thanks", "Steps") are left out, as they are nouns more often than verbs there. Modals ("Can",
"Will") are not verbs here, as they are not ``VB*`` for the tagger. The tagger also calls some
capitalised imperatives nouns or prepositions ("Explore" IN, "Begin" NN), which a lexicon does not
imitate; ``bench/ifbench_reference.py`` measures the agreement.
"""

from __future__ import annotations

#: auxiliaries and their forms (tagged VB, VBZ, VBP, VBD, VBN, VBG)
AUXILIARIES = frozenset(
    "be am is are was were been being have has had having do does did done doing get gets got".split()
)

#: common verbs in their base form
BASE_VERBS = frozenset(
    """accept achieve act add address adjust admire adopt advise affect agree aim allow analyze analyse
    answer apply appreciate approach argue arrange ask assess assume attach attempt avoid bake balance
    bear beat become begin believe belong bend bet bind bite blend blow boil book borrow bounce break
    breathe bring broaden build burn buy calculate call calm care carry catch cause celebrate change
    charge chase check cheer choose claim clarify clean clear climb close collect combine come compare
    compile complete compose compute concentrate conclude confirm connect consider construct consult
    contact continue contribute control convert convince cook copy correct count cover craft create cross
    cry cultivate cut dance deal decide declare decorate define delete deliver demonstrate deny describe
    design determine develop die dig discover discuss display dive divide draft drag draw dream dress
    drink drive drop dry earn eat edit educate elaborate eliminate embrace emphasize employ enable
    encourage end engage enhance enjoy ensure enter establish estimate evaluate examine exercise exist
    expand expect experience experiment explain explore express extend face fail fall feed feel fight
    fill find finish fit fix fly focus fold follow forget forgive form formulate foster freeze gain
    gather generate give glance go grab grant greet grow guess guide handle hang happen hate head hear
    help hide highlight hire hit hold hope hunt identify ignore illustrate imagine implement improve
    include incorporate increase indicate inform insert inspire install integrate intend introduce invent
    investigate invite involve join judge jump justify keep kick kill knock know label lay lead lean
    learn leave lend let lie lift light like limit link list listen live locate look lose love maintain
    make manage map mark master match matter measure meet melt memorize mention merge mind miss mix
    modify monitor move multiply name navigate need negotiate note notice observe obtain offer open
    operate order organize outline overcome own paint participate pass pause pay perform persuade pick
    picture place plan plant play point pour practice practise prefer prepare present preserve press
    pretend prevent print prioritize proceed produce promise promote protect prove provide publish pull
    punch purchase pursue push put question raise reach read realize reason recall receive recognize
    recommend record reduce reflect refuse regard relate relax release rely remain remember remind
    remove renew repeat replace reply report represent request require research reserve resolve respond
    rest restore retain return reveal review revise ride ring rise run save say scan search see seek
    select sell send separate serve set settle shake shape share shift shine shoot show shut sing sink
    sit skip sleep slide slow smell smile solve sort speak spend spin split spread stand start state stay
    steal step stick stir stop store strengthen stretch strike strive study submit succeed suggest
    summarize supply support suppose surround swim switch take talk taste teach tear tell tend test thank
    think throw tie touch track trade train transform translate travel treat trust try turn type
    understand unlock update upgrade urge use utilize value verify view visit vote wait wake walk want
    warm warn wash watch wear weigh welcome win wish wonder work worry wrap write yield""".split()
)

#: irregular past forms (VBD / VBN)
IRREGULAR_PAST = frozenset(
    """began begun bent bought brought built burnt came caught chose chosen dealt dove drew drawn drank
    drove driven ate eaten fell fallen felt fought found flew flown forgot forgotten froze frozen gave given
    went gone grew grown hung heard hid hidden held kept knew known laid led left lent lay lost made meant
    met paid ran rang rode risen rose said saw seen sought sold sent shook shone shot showed shown sang sung
    sat slept spoke spoken spent stood stole stolen stuck struck swam taken took taught tore torn told
    thought threw thrown understood woke wore worn won wrote written""".split()
)

MODALS = frozenset("can could may might must shall should will would ought".split())

#: words in -ing that are not verb forms
ING_NOUNS = frozenset(
    """thing nothing something anything everything king ring sing spring string sting swing wing bring
    morning evening ceiling wedding pudding during sibling darling duckling herring""".split()
)


def _stems(word: str) -> tuple[str, ...]:
    """The base forms an inflected ``word`` may come from ("making" → make, "stopped" → stop)."""
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            stem = word[: -len(suffix)]
            doubled = stem[:-1] if len(stem) > 2 and stem[-1] == stem[-2] else stem
            ied = stem[:-1] + "y" if suffix == "ed" and stem.endswith("i") else stem
            return (stem, stem + "e", doubled, ied)
    return ()


def is_verb(token: str) -> bool:
    """Whether ``token`` is a form of a common English verb (not a modal); case-insensitive."""
    word = token.lower()
    if word in MODALS:
        return False
    if word in AUXILIARIES or word in BASE_VERBS or word in IRREGULAR_PAST:
        return True
    if word.endswith("ing") and len(word) >= 5 and word not in ING_NOUNS:
        return True  # a present participle ("Whirring and pulsing, ...")
    return any(stem in BASE_VERBS for stem in _stems(word))
